//! A `clavis serve` child process for the tests that need the real binary (rate limits as
//! the SDKs see them, log hygiene): free port, temporary data directory, fixed bootstrap
//! admin, extra environment, stderr and stdout captured to a file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const ADMIN_ID: &str = "BinaryTestsBootstrapAdminClient1";
pub const ADMIN_SECRET: &str = "binary-tests-bootstrap-secret-3f9a0c2e4d6b8a1c5e7f";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running `clavis serve`; SIGTERM (then SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Server {
    /// Starts the binary with `env` added to the environment and waits for `/readyz`.
    pub fn start(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("clavis-bin-test-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let log = dir.path().join("server.log");
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clavis"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("CLAVIS_BOOTSTRAP_CLIENT_ID", ADMIN_ID)
            .env("CLAVIS_BOOTSTRAP_CLIENT_SECRET", ADMIN_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let insecure = env.iter().any(|(k, _)| *k == "CLAVIS_INSECURE_HTTP");
        let child = cmd.spawn().unwrap();
        let mut server = Server {
            child,
            port,
            dir,
            log,
        };
        server.wait_ready(insecure);
        server
    }

    pub fn domain(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("data/tls/ca.pem")
    }

    /// An HTTPS client trusting only this server's CA.
    pub fn http(&self) -> reqwest::Client {
        self.http_from(None)
    }

    /// The same, sending from `local` (any 127.0.0.0/8 address: the server sees another
    /// caller).
    pub fn http_from(&self, local: Option<std::net::IpAddr>) -> reqwest::Client {
        let ca = std::fs::read(self.ca_path()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .timeout(Duration::from_secs(20))
            .local_address(local)
            .build()
            .unwrap()
    }

    fn wait_ready(&mut self, insecure: bool) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("clavis exited ({status}):\n{}", self.log_text());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && (insecure || self.ca_path().exists())
            {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        panic!("clavis was not ready within 30 s:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait (so the log is complete).
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The admin's Management API token.
pub async fn admin_token(server: &Server, http: &reqwest::Client) -> String {
    let r = http
        .post(format!("{}/oauth/token", server.base()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ADMIN_ID),
            ("client_secret", ADMIN_SECRET),
            ("audience", &format!("{}/api/v2/", server.base())),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "token: {}", r.status());
    let v: serde_json::Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Runs `scripts/sdk-deps <which>` (idempotent).
pub fn sdk_deps(which: &str) {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/sdk-deps"))
        .arg(which)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/sdk-deps {which} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command with the SDK environment for `server` (admin credentials, trusted CA),
/// capturing its output; returns (status, output).
pub fn run_sdk_command(
    server: &Server,
    mut cmd: Command,
    timeout: Duration,
) -> (Option<ExitStatus>, String) {
    let ca = server.ca_path();
    let out_path = server.dir.path().join("sdk.out");
    let out = File::create(&out_path).unwrap();
    let err = out.try_clone().unwrap();
    cmd.current_dir(repo_root())
        .env("CLAVIS_DOMAIN", server.domain())
        .env("CLAVIS_CLIENT_ID", ADMIN_ID)
        .env("CLAVIS_CLIENT_SECRET", ADMIN_SECRET)
        .env("CLAVIS_CA_FILE", &ca)
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .env("SSL_CERT_FILE", &ca)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    (status, read_lossy(&out_path))
}

pub fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
