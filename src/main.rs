//! `jwt-blocklist` serves the API; `jwt-blocklist purge` runs one purge of
//! expired rows and exits (for cron, or to purge at a chosen moment). All
//! configuration comes from `Rocket.toml`, `ROCKET_*` variables and
//! `DATABASE_URL`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

#[rocket::main]
async fn main() -> ExitCode {
    let figment = jwt_blocklist::figment();
    let command = std::env::args().nth(1);
    match command.as_deref() {
        None | Some("serve") => match jwt_blocklist::rocket(figment).launch().await {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("jwt-blocklist: {error}");
                ExitCode::FAILURE
            }
        },
        Some("purge") => match jwt_blocklist::purge::run_once(&figment).await {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("jwt-blocklist purge: {error}");
                ExitCode::FAILURE
            }
        },
        Some(_) => {
            eprintln!("usage: jwt-blocklist [serve | purge]");
            ExitCode::from(2)
        }
    }
}
