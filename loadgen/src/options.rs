//! The command line: what a run measures, and against which servers
//! (the options are listed at the top of `main.rs`).

use std::{net::SocketAddr, path::PathBuf};

use loadgen::peer::Peer;

use crate::{Error, attack::ATTACKS};

#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) clients: usize,
    pub(crate) users: usize,
    pub(crate) rate: u32,
    pub(crate) seconds: u32,
    pub(crate) server: PathBuf,
    /// Which server it is.
    pub(crate) peer: Peer,
    /// The cores the servers it starts may run on (`taskset -c`).
    pub(crate) server_cores: Option<String>,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) processes: usize,
    pub(crate) database_url: Option<String>,
    pub(crate) redis_url: Option<String>,
    pub(crate) hostile: bool,
    /// Which attacks `--hostile` runs (all by default).
    pub(crate) attacks: Vec<String>,
    /// Kill the first process this many seconds into the broadcasting.
    pub(crate) kill_after: Option<u32>,
}

impl Options {
    pub(crate) fn parse() -> Result<Self, Error> {
        let mut options = Self {
            clients: 1000,
            users: 50,
            rate: 50,
            seconds: 10,
            server: PathBuf::new(),
            peer: Peer::Ours,
            server_cores: None,
            address: None,
            processes: 1,
            database_url: None,
            redis_url: None,
            hostile: false,
            attacks: ATTACKS.map(str::to_owned).to_vec(),
            kill_after: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--clients" => options.clients = value()?.parse()?,
                "--users" => options.users = value()?.parse()?,
                "--rate" => options.rate = value()?.parse()?,
                "--seconds" => options.seconds = value()?.parse()?,
                "--server" => options.server = value()?.into(),
                "--peer" => options.peer = value()?.parse()?,
                "--server-cores" => options.server_cores = Some(value()?),
                "--address" => options.address = Some(value()?.parse()?),
                "--processes" => options.processes = value()?.parse()?,
                "--database-url" => options.database_url = Some(value()?),
                "--redis-url" => options.redis_url = Some(value()?),
                "--hostile" => options.hostile = true,
                "--kill-after" => options.kill_after = Some(value()?.parse()?),
                "--attacks" => {
                    options.attacks = value()?.split(',').map(str::to_owned).collect();
                    if let Some(unknown) = options
                        .attacks
                        .iter()
                        .find(|a| !ATTACKS.contains(&a.as_str()))
                    {
                        return Err(
                            format!("unknown attack {unknown}: choose among {ATTACKS:?}").into(),
                        );
                    }
                }
                "--help" | "-h" => {
                    println!("see the top of loadgen/src/main.rs for the options");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown option {other}").into()),
            }
        }
        if options.users == 0 || options.clients == 0 || options.rate == 0 || options.processes == 0
        {
            return Err("--clients, --users, --rate and --processes must be at least 1".into());
        }
        if options.processes > 1 && (options.redis_url.is_none() || options.database_url.is_none())
        {
            return Err("several --processes need a shared --database-url and --redis-url".into());
        }
        if options.processes > 1 && options.address.is_some() {
            return Err("--address and --processes cannot be combined".into());
        }
        if options.kill_after.is_some() && (options.processes != 2 || options.hostile) {
            return Err("--kill-after needs --processes 2 (and no --hostile)".into());
        }
        if options.server.as_os_str().is_empty() {
            options.server = options.peer.default_server();
        }
        if options.peer != Peer::Ours
            && (options.processes > 1 || options.hostile || options.kill_after.is_some())
        {
            return Err("--peer socketio runs the plain fan-out against one process".into());
        }
        if options.hostile && (options.processes > 1 || options.address.is_some()) {
            return Err("--hostile starts one server of its own".into());
        }
        if options.hostile && options.clients.div_ceil(options.users) > 64 {
            return Err(
                "--hostile keeps every limit but its own: at most 64 clients per user (--users)"
                    .into(),
            );
        }
        Ok(options)
    }
}
