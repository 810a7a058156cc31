//! The server binary. Run it with `cargo leptos watch` during development,
//! or with `scripts/run` (see the README).

use std::process::ExitCode;

use server::{Config, Server, ServerError, config::DEFAULT_LOG_FILTER, shutdown};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), ServerError> {
    let config = Config::from_env()?;
    let server = Server::bind(config).await?;
    tracing::info!("listening on http://{}", server.local_addr()?);
    server.serve(shutdown::signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
