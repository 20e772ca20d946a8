//! A throwaway `redis-server` for tests: started on a free loopback port, killed with the value;
//! without persistence, or ([`RedisServer::start_persistent`]) with an append-only file synced
//! on every write, so that a `kill -9` and restart loses nothing, like a production Redis. The unit tests of `src/backends/` include this file once, in its
//! `mod.rs` (`#[cfg(test)] #[path = "../../tests/common/redis_server.rs"] mod redis_server;`),
//! end-to-end tests with `mod`; so it uses only `std`.
//!
//! Readiness is polled (a `PING` answered) with a deadline rather than waited for by sleeping.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// Another process can take a free port before the server binds it; then try another one.
const PORT_ATTEMPTS: usize = 5;

pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    /// The directory of the append-only file, when persistent; removed on drop.
    data_dir: Option<PathBuf>,
    /// Certificate, key and CA files: the server speaks TLS only.
    tls: Option<[PathBuf; 3]>,
    /// `None` while killed.
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port. Panics if `redis-server` is not in `PATH` or
    /// does not come up.
    pub fn start() -> Self {
        Self::start_with(None, None)
    }

    /// A server that speaks only TLS (`rediss://`), with this certificate, key and CA.
    pub fn start_tls(cert: PathBuf, key: PathBuf, ca: PathBuf) -> Self {
        Self::start_with(None, Some([cert, key, ca]))
    }

    /// Like [`RedisServer::start`], with an append-only file (fsync on every write) in a fresh
    /// directory: what is acknowledged survives [`RedisServer::kill`] and [`RedisServer::restart`].
    pub fn start_persistent() -> Self {
        let dir = std::env::temp_dir().join(format!("connectors-redis-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("a temp dir for the append-only file");
        Self::start_with(Some(dir), None)
    }

    fn start_with(data_dir: Option<PathBuf>, tls: Option<[PathBuf; 3]>) -> Self {
        let binary = find_in_path("redis-server").unwrap_or_else(|| {
            panic!("`redis-server` is not in PATH; the Redis tests need it (e.g. `apt-get install redis-server`)")
        });
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn(&binary, port, data_dir.as_ref(), tls.as_ref()) {
                Ok(child) => return Self { binary, port, data_dir, tls, child: Some(child) },
                Err(failure) => failures.push(format!("port {port}: {failure}")),
            }
        }
        panic!("redis-server did not start: {}", failures.join("; "));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The running server's process id (to pause it with SIGSTOP, as a stalled host would).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// Kills the server with SIGKILL, as a crash would; its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it has already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (killing the running one first): empty, or
    /// with what it had when persistent.
    pub fn restart(&mut self) {
        self.kill();
        match spawn(&self.binary, self.port, self.data_dir.as_ref(), self.tls.as_ref()) {
            Ok(child) => self.child = Some(child),
            Err(failure) => panic!("redis-server did not restart on port {}: {failure}", self.port),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback port can be bound");
    listener.local_addr().expect("a bound socket has an address").port()
}

fn spawn(binary: &PathBuf, port: u16, data_dir: Option<&PathBuf>, tls: Option<&[PathBuf; 3]>) -> Result<Child, String> {
    let mut command = Command::new(binary);
    command.args(["--bind", "127.0.0.1", "--save", "", "--loglevel", "warning"]);
    match tls {
        None => command.args(["--port", &port.to_string()]),
        Some([cert, key, ca]) => command
            .args(["--port", "0", "--tls-port", &port.to_string(), "--tls-auth-clients", "no", "--tls-cert-file"])
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key)
            .arg("--tls-ca-cert-file")
            .arg(ca),
    };
    match data_dir {
        Some(dir) => command.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]).arg(dir),
        None => command.args(["--appendonly", "no", "--dir"]).arg(std::env::temp_dir()),
    };
    let mut child = command
        // Never piped: a pipe nobody reads would stall the server once full.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run {}: {err}", binary.display()))?;
    let deadline = Instant::now() + STARTUP_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited with {status} (port taken?)"));
        }
        // A TLS server is taken as up once it accepts connections (a PING would need TLS).
        let up =
            if tls.is_some() { TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() } else { answers_ping(port) };
        if up {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("no PONG within {STARTUP_DEADLINE:?}"))
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
