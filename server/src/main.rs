//! The server binary. Run it with `cargo leptos watch` during development,
//! or with `scripts/run` (see the README).

use std::{io::IsTerminal, process::ExitCode};

use server::{Config, Server, ServerError, config::DEFAULT_LOG_FILTER, shutdown};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Before the runtime starts its threads.
    return_large_allocations_to_the_os();
    // A filter that does not parse is a mistake to say, as any other
    // setting's is, not a reason to log something else quietly.
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => filter,
            Err(error) => {
                eprintln!("error: RUST_LOG={text:?} is not a log filter: {error}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => EnvFilter::new(DEFAULT_LOG_FILTER),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a terminal only: log files and collectors get plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), ServerError> {
    let config = Config::from_env()?;
    let secure_cookie = config.session.secure;
    let server = Server::bind(config).await?;
    let address = server.local_addr()?;
    tracing::info!("listening on http://{address}");
    if !secure_cookie && !address.ip().is_loopback() {
        // Plain http off loopback is right on a private network behind a
        // TLS proxy, wrong facing the internet: said once, where whoever
        // deploys it looks.
        tracing::warn!(
            "listening on {address} with SESSION_COOKIE_SECURE off: the session cookie also \
             travels over plain http. Behind TLS, set SESSION_COOKIE_SECURE=true"
        );
    }
    server.serve(shutdown::signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Makes glibc give large freed allocations back to the operating system.
///
/// Each password hash (Argon2) allocates 19 MiB and frees it. By default
/// glibc raises its mmap threshold after such a free, so later 19 MiB
/// buffers come from per-thread heaps that keep the memory: a handful of
/// log-ins would leave the server holding hundreds of MiB. A fixed threshold
/// keeps every allocation above 1 MiB in its own mapping, returned on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_allocations_to_the_os() {
    const ONE_MIB: libc::c_int = 1 << 20;
    // SAFETY: mallopt only changes allocator parameters (it takes glibc's own
    // lock), and a failure (return value 0) leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, ONE_MIB);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_allocations_to_the_os() {}
