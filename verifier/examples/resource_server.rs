//! An example resource server: `GET /protected` and `GET /health`, answered
//! as jwt-blocklist answers them, with every token verified here, locally.
//!
//! ```sh
//! JBL_URL=http://127.0.0.1:8000 JBL_CLIENT_ID=billing JBL_CLIENT_SECRET=… PORT=8100 \
//!     cargo run -p jwt-blocklist-verifier --example resource_server
//! ```

use jwt_blocklist_verifier::{Config, Verifier};

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let port: u16 = std::env::var("PORT").unwrap_or_else(|_| "8100".into()).parse()?;
    let verifier = Verifier::start(config).await?;
    let figment = rocket::Config::figment().merge(("port", port));
    jwt_blocklist_verifier::rocket::resource_server(verifier).configure(figment).launch().await?;
    Ok(())
}
