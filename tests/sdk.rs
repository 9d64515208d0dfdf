//! Official-SDK compatibility tests: Auth0's own Node SDK (`auth0` on npm),
//! Python SDK (`auth0-python`) and `auth0-deploy-cli` (a0deploy) run unchanged
//! against a live `clavis serve`.
//!
//! Each test starts its own server (free port, temporary data dir, fixed
//! bootstrap admin client), waits for `GET /readyz`, then runs
//!   node --test sdk-tests/node/*.test.mjs
//!   sdk-tests/python/.venv/bin/python -m pytest -q sdk-tests/python
//! with CLAVIS_DOMAIN / CLAVIS_CLIENT_ID / CLAVIS_CLIENT_SECRET and the local
//! CA trusted. The deploy-cli round trip (`sdk-tests/deploy-cli/roundtrip.mjs`)
//! gets a second, empty server as well (CLAVIS_DOMAIN_2, both CAs trusted).
//! Missing SDK dependencies are installed by `scripts/sdk-deps`.
//! What the SDKs send on the wire is documented in sdk-tests/SDK-REQUESTS.md.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::server::{
    BOOTSTRAP_CLIENT_ID, BOOTSTRAP_CLIENT_SECRET, Server, output_file, tail, wait_with_timeout,
};

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
fn run_sdk(server: &Server, label: &str, cmd: Command) -> TestResult {
    run_sdk_with(server, &[], label, cmd)
}

/// [`run_sdk`] with more servers: `CLAVIS_DOMAIN_2`, ... name them, and every server's CA
/// is trusted.
fn run_sdk_with(server: &Server, more: &[&Server], label: &str, mut cmd: Command) -> TestResult {
    let ca = if more.is_empty() {
        server.ca_path()
    } else {
        let mut bundle = Vec::new();
        for s in std::iter::once(server).chain(more.iter().copied()) {
            let pem = fs::read(s.ca_path())
                .map_err(|e| format!("cannot read {}: {e}", s.ca_path().display()))?;
            bundle.extend_from_slice(&pem);
        }
        let path = server.scratch().join("ca-bundle.pem");
        fs::write(&path, bundle).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        path
    };
    for (i, s) in more.iter().enumerate() {
        cmd.env(format!("CLAVIS_DOMAIN_{}", i + 2), s.domain());
    }
    let out_path = server.scratch().join(format!("{label}.out"));
    let (out, err) = output_file(&out_path)?;
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
    for (i, s) in more.iter().enumerate() {
        println!("--- clavis server {} log ---\n{}", i + 2, s.log_tail());
    }
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

/// auth0-deploy-cli round trip: seed, export to YAML, import unchanged (no-op), import an
/// edit, import into a second empty server, import a deletion with AUTH0_ALLOW_DELETE, and
/// export more clients and grants than a page holds (`sdk-tests/deploy-cli/roundtrip.mjs`).
#[test]
fn deploy_cli_round_trip() -> Result<(), Failure> {
    ensure_sdk_deps("deploy-cli")?;
    // Each server gets a fresh database of its own (also on PostgreSQL).
    let server = Server::start()?;
    let second = Server::start()?;
    let work = server.scratch().join("deploy-cli");
    let mut cmd = Command::new("node");
    cmd.arg("sdk-tests/deploy-cli/roundtrip.mjs")
        .env("CLAVIS_WORK_DIR", &work);
    Ok(run_sdk_with(&server, &[&second], "deploy-cli", cmd)?)
}

/// The admin console (`/console/`) in Debian's headless Chromium, driven by puppeteer-core:
/// sign-in, a client, a key uploaded, its expiry set with the picker (the token endpoint
/// refuses the key, checked from Node), cleared, moved, detached, each step seen on the
/// timeline; a read-only token sees no write controls; no CSP violation; axe-core finds no
/// critical or serious accessibility violation on any page (`sdk-tests/console/`). The
/// screenshots go to `target/console-screenshots/` (`CLAVIS_SCREENSHOT_DIR` to choose; the
/// committed set in `docs/console/` is refreshed with `CLAVIS_SCREENSHOT_DIR=docs/console`).
#[test]
fn console_in_chromium() -> Result<(), Failure> {
    let chromium = std::env::var("CLAVIS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !PathBuf::from(&chromium).exists() {
        return Err(Failure(format!(
            "{chromium} is missing: install Debian's chromium (scripts/test does: apt-get install chromium)"
        )));
    }
    ensure_sdk_deps("console")?;
    let shots = match std::env::var_os("CLAVIS_SCREENSHOT_DIR") {
        Some(dir) => repo_root().join(dir),
        None => repo_root().join("target").join("console-screenshots"),
    };
    let server = Server::start()?;
    let mut cmd = Command::new("node");
    cmd.arg("sdk-tests/console/console.test.mjs")
        .env("CLAVIS_SCREENSHOT_DIR", &shots)
        .env("CLAVIS_CHROMIUM", &chromium)
        .env("HOME", server.scratch());
    Ok(run_sdk(&server, "console", cmd)?)
}
