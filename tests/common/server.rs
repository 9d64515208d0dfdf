//! The `clavis serve` child process of every test that needs the real binary (signals,
//! restarts, crashes, several nodes, limits, logs, SDKs in other languages): free port,
//! temporary data directory, the tests' bootstrap admin, extra arguments and environment,
//! stdout and stderr captured to a file. Stopped (SIGTERM, then SIGKILL) when dropped.

use std::fs::{self, File, OpenOptions};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{ADMIN_ID, ADMIN_SECRET};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a server: [`Server::builder`], then `.arg`/`.env`, then [`start`](ServerBuilder::start).
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    /// Extra `clavis serve` arguments.
    args: Vec<String>,
    /// Extra environment variables.
    env: Vec<(String, String)>,
    /// SQLite even when the tests run against PostgreSQL.
    sqlite: bool,
}

impl ServerBuilder {
    /// An extra `clavis serve` argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Extra `clavis serve` arguments.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// An extra environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Extra environment variables.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        self.env
            .extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// The server keeps its SQLite file even when the tests run against PostgreSQL (tests of
    /// the process itself: limits, log contents, crash consistency of the file).
    pub fn sqlite(mut self) -> Self {
        self.sqlite = true;
        self
    }

    /// Starts the server and waits until it is ready. When the tests run against PostgreSQL
    /// (`CLAVIS_TEST_POSTGRES_URL`) it gets a fresh database of its own, unless the arguments
    /// name one or [`sqlite`](Self::sqlite) was asked for.
    pub fn start(mut self) -> Result<Server, String> {
        if !self.sqlite
            && let Some(base) = super::postgres::base_url()
            && !self.args.iter().any(|a| a == "--database-url")
        {
            self.args.push("--database-url".into());
            self.args
                .push(super::postgres::fresh_database_blocking(&base));
        }
        let dir = tempfile::Builder::new()
            .prefix("clavis-test-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary data dir: {e}"))?;
        let data_path = dir.path().join("data");
        fs::create_dir(&data_path)
            .map_err(|e| format!("cannot create {}: {e}", data_path.display()))?;
        let log_path = dir.path().join("server.log");
        let mut server = Server {
            child: None,
            port: free_port()?,
            dir,
            log_path,
            options: self,
        };
        server.spawn()?;
        Ok(server)
    }
}

/// A running (or stopped, restartable) `clavis serve`.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    options: ServerBuilder,
}

impl Server {
    /// A builder for a server with extra arguments or environment.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A fresh server: free port, temporary data dir, the tests' bootstrap admin.
    pub fn start() -> Result<Server, String> {
        Self::builder().start()
    }

    /// A fresh server on SQLite with `env` added (the tests of the process itself); panics
    /// when it cannot start.
    pub fn with_env(env: &[(&str, &str)]) -> Server {
        Self::builder()
            .sqlite()
            .envs(env)
            .start()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("cannot open {}: {e}", self.log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone the log file handle: {e}"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_clavis"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.data_path())
            .args(&self.options.args)
            .env("CLAVIS_BOOTSTRAP_CLIENT_ID", ADMIN_ID)
            .env("CLAVIS_BOOTSTRAP_CLIENT_SECRET", ADMIN_SECRET)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env!("CARGO_BIN_EXE_clavis")))?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready() {
            return Err(format!("{e}\n--- server log ---\n{}", self.log_tail()));
        }
        Ok(())
    }

    /// The data directory (kept across restarts).
    pub fn data_path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The scratch directory the data directory lives in (for test output files).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// `127.0.0.1:<port>`, the `domain` the SDKs take.
    pub fn domain(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The generated CA to trust.
    pub fn ca_path(&self) -> PathBuf {
        self.data_path().join("tls").join("ca.pem")
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("https://{}", self.domain())
    }

    /// An HTTPS client trusting only the server's CA.
    pub fn http_client(&self) -> Result<reqwest::Client, String> {
        self.http_client_from(None, Duration::from_secs(10))
    }

    /// An HTTPS client trusting only the server's CA, sending from `local` (any 127.0.0.0/8
    /// address: the server sees another caller), with a request timeout.
    pub fn http_client_from(
        &self,
        local: Option<std::net::IpAddr>,
        timeout: Duration,
    ) -> Result<reqwest::Client, String> {
        let pem = fs::read(self.ca_path())
            .map_err(|e| format!("no CA at {}: {e}", self.ca_path().display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("bad CA PEM: {e}"))?;
        reqwest::Client::builder()
            .tls_certs_only([cert])
            .timeout(timeout)
            .local_address(local)
            .build()
            .map_err(|e| format!("cannot build an HTTPS client: {e}"))
    }

    /// An HTTPS client (20 s timeout); panics when the CA is unreadable.
    pub fn http(&self) -> reqwest::Client {
        self.http_from(None)
    }

    /// The same, sending from `local`.
    pub fn http_from(&self, local: Option<std::net::IpAddr>) -> reqwest::Client {
        self.http_client_from(local, Duration::from_secs(20))
            .unwrap()
    }

    /// The request helpers on this server (20 s timeout).
    pub fn api(&self) -> super::request::Api {
        super::request::Api::new(self.http(), self.base())
    }

    /// The bootstrap admin's Management API token.
    pub async fn admin_token(&self) -> String {
        self.api().admin_token().await
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut last = String::from("nothing tried yet");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("clavis exited before it was ready ({status})"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                last = format!("port {} does not accept connections yet", self.port);
                sleep(Duration::from_millis(100));
                continue;
            }
            if self.insecure() {
                return Ok(());
            }
            match self.readyz_blocking() {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            sleep(Duration::from_millis(200));
        }
        Err(format!(
            "clavis was not ready within {READY_TIMEOUT:?}: {last}"
        ))
    }

    /// `GET /readyz` on a thread of its own (the caller may be inside a runtime).
    fn readyz_blocking(&self) -> Result<(), String> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("cannot build a tokio runtime: {e}"))?
                        .block_on(self.readyz())
                })
                .join()
                .unwrap_or_else(|_| Err("the readiness check panicked".into()))
        })
    }

    async fn readyz(&self) -> Result<(), String> {
        let client = self.http_client()?;
        let resp = client
            .get(format!("https://{}/readyz", self.domain()))
            .send()
            .await
            .map_err(|e| format!("GET /readyz failed: {e}"))?;
        if resp.status() == reqwest::StatusCode::OK {
            Ok(())
        } else {
            Err(format!("GET /readyz answered {}", resp.status()))
        }
    }

    /// Whether the server speaks plain HTTP (`CLAVIS_INSECURE_HTTP`).
    fn insecure(&self) -> bool {
        self.options
            .env
            .iter()
            .any(|(k, _)| k == "CLAVIS_INSECURE_HTTP")
            || self.options.args.iter().any(|a| a == "--insecure-http")
    }

    /// The end of the server's log (stdout and stderr, across restarts).
    pub fn log_tail(&self) -> String {
        tail(&self.log_path, 16 * 1024)
    }

    /// The whole log.
    pub fn log(&self) -> String {
        tail(&self.log_path, usize::MAX)
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the running server.
    pub fn signal(&self, name: &str) -> Result<(), String> {
        let pid = self.pid().ok_or("the server is not running")?;
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{name} {pid} failed"))
        }
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = wait_with_timeout(child, timeout);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Runs `clavis <subcommand>` on this server's data (the same data directory, arguments
    /// and environment as the server), with `extra` arguments.
    pub fn command(
        &self,
        subcommand: &str,
        extra: &[&str],
    ) -> Result<std::process::Output, String> {
        Command::new(env!("CARGO_BIN_EXE_clavis"))
            .arg(subcommand)
            .arg("--data-dir")
            .arg(self.data_path())
            .args(&self.options.args)
            .args(extra)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run clavis {subcommand}: {e}"))
    }

    /// SIGKILL: no shutdown, no flush, no checkpoint ([`restart`](Self::restart) starts it
    /// again).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Adds arguments for the next start (and for [`command`](Self::command)).
    pub fn add_args(&mut self, args: &[&str]) {
        self.options.args.extend(args.iter().map(|a| a.to_string()));
    }

    /// Whether the tests run against PostgreSQL (the server's store is shared).
    pub fn on_postgres(&self) -> bool {
        self.options.args.iter().any(|a| a == "--database-url")
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if wait_with_timeout(&mut child, Duration::from_secs(5)).is_some() {
                return;
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?
        .port();
    drop(listener);
    Ok(port)
}

/// The last `max` bytes of a file, as text.
pub fn tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Waits for a child; kills it and returns `None` after `timeout`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Creates a file for a child process's output.
pub fn output_file(path: &Path) -> Result<(File, File), String> {
    let out = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot clone the output file handle: {e}"))?;
    Ok((out, err))
}
