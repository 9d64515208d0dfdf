//! Running the official SDKs (sdk-tests/) against test servers: their pinned dependencies
//! (`scripts/sdk-deps`) and one command with the SDK environment (domain, admin credentials,
//! trusted CA).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::server::{Server, output_file, tail, wait_with_timeout};
use super::{ADMIN_ID, ADMIN_SECRET};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Serialises `scripts/sdk-deps` between the tests of one binary (the script also takes a
/// file lock against other processes).
static DEPS: Mutex<()> = Mutex::new(());

/// Runs `scripts/sdk-deps <which>` (idempotent; installs the pinned SDKs when missing or
/// stale).
pub fn sdk_deps(which: &str) -> Result<(), String> {
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

/// Runs `cmd` from the repository root with the SDK environment for `server` (and `more`
/// servers: `CLAVIS_DOMAIN_2`, ... name them, and every server's CA is trusted), its stdout
/// and stderr captured to `<label>.out` in the server's scratch directory; killed after
/// `timeout`. Returns (exit status, `None` when killed; output).
pub fn run(
    server: &Server,
    more: &[&Server],
    label: &str,
    mut cmd: Command,
    timeout: Duration,
) -> Result<(Option<ExitStatus>, String), String> {
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
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the {label} SDK tests: {e}"))?;
    let status = wait_with_timeout(&mut child, timeout);
    Ok((status, tail(&out_path, 256 * 1024)))
}

/// The Node SDK suite's files (`sdk-tests/node/*.test.mjs`), sorted: explicit files, since
/// `node --test <dir>` is read differently by Node 20 and Node 22+.
pub fn node_test_files() -> Result<Vec<PathBuf>, String> {
    let dir = repo_root().join("sdk-tests").join("node");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.test.mjs files in {}", dir.display()));
    }
    Ok(files)
}
