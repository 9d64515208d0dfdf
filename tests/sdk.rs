//! Official-SDK compatibility tests: Auth0's own Node SDK (`auth0` on npm) and
//! Python SDK (`auth0-python`) run unchanged against a live `clavis serve`.
//!
//! Each test starts its own server (free port, temporary data dir, fixed
//! bootstrap admin client), waits for `GET /readyz`, then runs
//!   node --test sdk-tests/node/*.test.mjs
//!   sdk-tests/python/.venv/bin/python -m pytest -q sdk-tests/python
//! with CLAVIS_DOMAIN / CLAVIS_CLIENT_ID / CLAVIS_CLIENT_SECRET and the local
//! CA trusted. Missing SDK dependencies are installed by `scripts/sdk-deps`.
//! What the SDKs send on the wire is documented in sdk-tests/SDK-REQUESTS.md.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

const BOOTSTRAP_CLIENT_ID: &str = "SdkTestsBootstrapAdminClient0001";
const BOOTSTRAP_CLIENT_SECRET: &str = "sdk-tests-bootstrap-secret-7d1f0c9a2b4e4f6a8c3d5e7f9a1b3c5d";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const SDK_RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Serialises `scripts/sdk-deps` between the tests of this binary (the script
/// also takes a file lock against other processes).
static DEPS: Mutex<()> = Mutex::new(());

type TestResult = Result<(), String>;

/// The error of a test function: its `Debug` (what the test harness prints on
/// failure) is the plain message, so multi-line output stays readable.
struct Failure(String);

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure(message)
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running `clavis serve`, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
    data_dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl Server {
    fn start() -> Result<Server, String> {
        let data_dir = tempfile::Builder::new()
            .prefix("clavis-sdk-test-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary data dir: {e}"))?;
        let data_path = data_dir.path().join("data");
        fs::create_dir(&data_path)
            .map_err(|e| format!("cannot create {}: {e}", data_path.display()))?;
        let port = free_port()?;
        let log_path = data_dir.path().join("server.log");
        let log = File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone the log file handle: {e}"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_clavis"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_path)
            .env("CLAVIS_BOOTSTRAP_CLIENT_ID", BOOTSTRAP_CLIENT_ID)
            .env("CLAVIS_BOOTSTRAP_CLIENT_SECRET", BOOTSTRAP_CLIENT_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env!("CARGO_BIN_EXE_clavis")))?;
        let mut server = Server {
            child,
            port,
            data_dir,
            log_path,
        };
        if let Err(e) = server.wait_ready() {
            let log = server.log_tail();
            return Err(format!("{e}\n--- server log ---\n{log}"));
        }
        Ok(server)
    }

    fn domain(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn ca_path(&self) -> PathBuf {
        self.data_dir.path().join("data").join("tls").join("ca.pem")
    }

    fn wait_ready(&mut self) -> TestResult {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
        let mut last = String::from("nothing tried yet");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("clavis exited before it was ready ({status})"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                last = format!("port {} does not accept connections yet", self.port);
                sleep(Duration::from_millis(100));
                continue;
            }
            match runtime.block_on(readyz(&self.ca_path(), &self.domain())) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            sleep(Duration::from_millis(200));
        }
        Err(format!(
            "clavis was not ready within {READY_TIMEOUT:?}: {last}"
        ))
    }

    fn log_tail(&self) -> String {
        tail(&self.log_path, 16 * 1024)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first so the server can shut down cleanly; std only knows SIGKILL.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
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

/// GET https://<domain>/readyz trusting only the server's own CA.
async fn readyz(ca: &Path, domain: &str) -> TestResult {
    let pem = fs::read(ca).map_err(|e| format!("no CA yet at {}: {e}", ca.display()))?;
    let cert = reqwest::Certificate::from_pem(&pem)
        .map_err(|e| format!("bad CA PEM {}: {e}", ca.display()))?;
    let client = reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("cannot build an HTTPS client: {e}"))?;
    let resp = client
        .get(format!("https://{domain}/readyz"))
        .send()
        .await
        .map_err(|e| format!("GET /readyz failed: {e}"))?;
    if resp.status() == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("GET /readyz answered {}", resp.status()))
    }
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?
        .port();
    drop(listener);
    Ok(port)
}

fn tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Runs `scripts/sdk-deps <which>` (idempotent; installs the pinned SDKs when missing or stale).
fn ensure_sdk_deps(which: &str) -> TestResult {
    let _guard = DEPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = repo_root();
    let out = Command::new("bash")
        .arg(root.join("scripts").join("sdk-deps"))
        .arg(which)
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/sdk-deps (is bash installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "scripts/sdk-deps {which} failed ({}); the {which} SDK dependencies could not be installed.\n\
             --- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs an SDK test command against `server`, prints its output, and fails unless it exits 0.
fn run_sdk(server: &Server, label: &str, mut cmd: Command) -> TestResult {
    let ca = server.ca_path();
    let out_path = server.data_dir.path().join(format!("{label}.out"));
    let out = File::create(&out_path)
        .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot clone the output file handle: {e}"))?;
    cmd.current_dir(repo_root())
        .env("CLAVIS_DOMAIN", server.domain())
        .env("CLAVIS_CLIENT_ID", BOOTSTRAP_CLIENT_ID)
        .env("CLAVIS_CLIENT_SECRET", BOOTSTRAP_CLIENT_SECRET)
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
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the {label} SDK tests: {e}"))?;
    let status = wait_with_timeout(&mut child, SDK_RUN_TIMEOUT);
    let output = tail(&out_path, 256 * 1024);
    println!("--- {label} SDK tests (stdout+stderr) ---\n{output}");
    println!("--- clavis server log ---\n{}", server.log_tail());
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!(
            "the {label} SDK tests failed ({s}); their output and the server log are printed above"
        )),
        None => Err(format!(
            "the {label} SDK tests did not finish within {SDK_RUN_TIMEOUT:?} and were killed"
        )),
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[test]
fn node_sdk_lifecycle() -> Result<(), Failure> {
    ensure_sdk_deps("node")?;
    let dir = repo_root().join("sdk-tests").join("node");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Failure(format!("no *.test.mjs files in {}", dir.display())));
    }
    let server = Server::start()?;
    let mut cmd = Command::new("node");
    // Explicit files: `node --test <dir>` is read differently by Node 20 and Node 22+.
    cmd.arg("--test").args(&files);
    Ok(run_sdk(&server, "node", cmd)?)
}

#[test]
fn python_sdk_lifecycle() -> Result<(), Failure> {
    ensure_sdk_deps("python")?;
    let python = repo_root()
        .join("sdk-tests")
        .join("python")
        .join(".venv")
        .join("bin")
        .join("python");
    let server = Server::start()?;
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pytest", "-q", "sdk-tests/python"]);
    Ok(run_sdk(&server, "python", cmd)?)
}
