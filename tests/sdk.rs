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

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::sdk::{node_test_files, repo_root, run, sdk_deps};
use common::server::Server;

const SDK_RUN_TIMEOUT: Duration = Duration::from_secs(600);

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

/// Runs an SDK test command against `server`, prints its output, and fails unless it exits 0.
fn run_sdk(server: &Server, label: &str, cmd: Command) -> TestResult {
    run_sdk_with(server, &[], label, cmd)
}

/// [`run_sdk`] with more servers: `CLAVIS_DOMAIN_2`, ... name them, and every server's CA
/// is trusted.
fn run_sdk_with(server: &Server, more: &[&Server], label: &str, cmd: Command) -> TestResult {
    let (status, output) = run(server, more, label, cmd, SDK_RUN_TIMEOUT)?;
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
    sdk_deps("node")?;
    let files = node_test_files()?;
    let server = Server::start()?;
    let mut cmd = Command::new("node");
    cmd.arg("--test").args(&files);
    Ok(run_sdk(&server, "node", cmd)?)
}

#[test]
fn python_sdk_lifecycle() -> Result<(), Failure> {
    sdk_deps("python")?;
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
    sdk_deps("deploy-cli")?;
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
    sdk_deps("console")?;
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
