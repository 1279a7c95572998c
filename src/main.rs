//! Serves the jwt-blocklist API; all configuration comes from `Rocket.toml`,
//! `ROCKET_*` variables and `DATABASE_URL`.

#![forbid(unsafe_code)]

#[rocket::main]
async fn main() -> Result<(), Box<rocket::Error>> {
    jwt_blocklist::rocket(jwt_blocklist::figment()).launch().await.map_err(Box::new)?;
    Ok(())
}
