//! The `jwt-blocklist` binary: the command line of `cli.rs`. With no command
//! (or `serve`) it serves the API.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use jwt_blocklist::cli::{Cli, Command};

/// mimalloc rather than glibc's malloc: a request allocates and frees many
/// small blocks across two worker threads, and glibc's consolidation of
/// them was a tenth of /protected's user time (perf, against the ceiling's
/// 6 %; issue 20).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[rocket::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let figment = jwt_blocklist::figment();
    jwt_blocklist::logging::init(&figment);
    let code = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match jwt_blocklist::rocket(figment).launch().await {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("jwt-blocklist: {error}");
                ExitCode::FAILURE
            }
        },
        command => jwt_blocklist::cli::run(command, &figment).await,
    };
    // The log's writer thread holds what was not written yet.
    jwt_blocklist::logging::flush();
    code
}
