//! The run's users, signed up for real through the server function: the
//! ordinary clients' and, with `--hostile`, the attackers'.

use std::net::SocketAddr;

use loadgen::{http, report::Step, server_functions};

use crate::{Error, options::Options};

/// The name of the `index`-th user this run signs up.
pub(crate) fn user_name(index: usize) -> String {
    format!("bench-{}-{index}", std::process::id())
}

/// Signs up `count` users; returns their session cookies.
async fn sign_up(address: SocketAddr, count: usize) -> Result<Vec<String>, Error> {
    let mut cookies = Vec::with_capacity(count);
    let mut connection = http::Connection::open(address).await?;
    for index in 0..count {
        let response =
            server_functions::sign_up(&mut connection, &user_name(index), "benchmark password")
                .await?;
        match (response.status, response.cookie) {
            (200, Some(cookie)) => cookies.push(cookie),
            (status, _) => {
                return Err(format!(
                    "sign-up answered {status}: {}",
                    String::from_utf8_lossy(&response.body)
                )
                .into());
            }
        }
    }
    Ok(cookies)
}

/// The session cookies of the run's users (none for a peer without
/// accounts).
#[derive(Default)]
pub(crate) struct Accounts {
    /// The ordinary clients' users.
    pub(crate) users: Vec<String>,
    /// With `--hostile`, the flooder and the announcer.
    pub(crate) attackers: Vec<String>,
}

/// Signs up `--users` users, and the attackers' two with `--hostile`.
pub(crate) async fn sign_up_everyone(
    address: SocketAddr,
    options: &Options,
) -> Result<Accounts, Error> {
    let step = Step::start(format_args!("signing up {} users", options.users));
    // The attackers have accounts too, past the others.
    let attackers = if options.hostile { 2 } else { 0 };
    let mut users = sign_up(address, options.users + attackers).await?;
    let attackers = users.split_off(options.users);
    step.done();
    Ok(Accounts { users, attackers })
}
