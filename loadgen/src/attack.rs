//! `--hostile`: the attacks of `loadgen::hostile`, started together while
//! the ordinary clients receive, each from a loopback address of its own,
//! and their answers gathered at the end.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use futures_util::{FutureExt, future::BoxFuture};
use tokio::task::JoinSet;

use loadgen::hostile;

use crate::accounts::user_name;

/// The attacks `--hostile` can run.
pub const ATTACKS: [&str; 4] = ["flood", "announce", "passwords", "anonymous"];

/// The attacks of `--hostile`, running while the events go out.
///
/// They run on threads of their own, at a lower priority (nice 10): on the
/// two cores the server shares with the load generator, the attackers' own
/// work would otherwise delay the ordinary clients' reads, and count as
/// the server's latency. Real attackers use their own machines. The server
/// gets no priority either way.
pub struct Attack {
    running: JoinSet<(&'static str, hostile::Tally)>,
    runtime: tokio::runtime::Runtime,
}

impl Attack {
    /// Starts every attack in `attacks` against `address`, each from an
    /// address of its own, until `until`. The flood is in `room`; the
    /// flooder and the announcer are the users of the first two `cookies`,
    /// and the passwords are guessed for the run's first user.
    pub fn start(
        attacks: &[String],
        address: SocketAddr,
        room: Arc<str>,
        cookies: &[String],
        until: Instant,
    ) -> std::io::Result<Self> {
        let on = |attack: &str| attacks.iter().any(|chosen| chosen == attack);
        let runtime = attackers_runtime()?;
        let at = runtime.handle().clone();
        let from = |last: u8| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
        let victim = user_name(0);
        let (flooder, announcer) = (cookies[0].clone(), cookies[1].clone());
        let mut running = JoinSet::new();
        let mut spawn = |name: &'static str, attack: BoxFuture<'static, hostile::Tally>| {
            running.spawn_on(async move { (name, attack.await) }, &at);
        };
        if on("flood") {
            spawn(
                "20 sockets flooding the room with joins and leaves",
                hostile::flood_joins(from(2), address, flooder, room, 20, until).boxed(),
            );
        }
        if on("announce") {
            spawn(
                "oversized announcements: 64 KiB and 600 characters, over and over",
                hostile::oversized_announcements(from(3), address, announcer, until).boxed(),
            );
        }
        if on("passwords") {
            spawn(
                "200 wrong-password log-ins at once",
                async move { hostile::wrong_passwords(from(4), address, &victim, 200).await }
                    .boxed(),
            );
        }
        if on("anonymous") {
            spawn(
                "2,000 idle anonymous sockets from one address",
                async move {
                    let (tally, sockets) = hostile::idle_anonymous(from(5), address, 2000).await;
                    // Held open, idle, for the whole attack.
                    tokio::time::sleep_until(until.into()).await;
                    drop(sockets);
                    tally
                }
                .boxed(),
            );
        }
        Ok(Self { running, runtime })
    }

    /// Waits for every attack to end; returns what each got, by name.
    pub async fn finish(mut self) -> Vec<(&'static str, hostile::Tally)> {
        let mut done = Vec::new();
        while let Some(attack) = self.running.join_next().await {
            if let Ok(attack) = attack {
                done.push(attack);
            }
        }
        done.sort_by_key(|(name, _)| *name);
        self.runtime.shutdown_background();
        done
    }
}

/// The attackers' runtime: two threads at nice 10 (see [`Attack`]).
fn attackers_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("attacker")
        .enable_all()
        .on_thread_start(|| {
            #[cfg(target_os = "linux")]
            // SAFETY: setpriority changes this thread's niceness only; a
            // failure leaves it as it was.
            unsafe {
                let thread = libc::gettid();
                libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 10);
            }
        })
        .build()
}
