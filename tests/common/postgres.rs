//! PostgreSQL for tests: the shared throwaway cluster named by `CLAVIS_TEST_POSTGRES_URL`
//! (`scripts/test-postgres` starts one), a fresh database per test, and private clusters for
//! tests that stop and start the server (`scripts/pg-cluster`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::Connection;

/// The variable naming the shared test cluster (its maintenance database).
pub const URL_VAR: &str = "CLAVIS_TEST_POSTGRES_URL";

/// The shared cluster's URL, when the tests run against PostgreSQL.
pub fn base_url() -> Option<String> {
    std::env::var(URL_VAR).ok().filter(|u| !u.is_empty())
}

/// The shared cluster's URL; a test that needs PostgreSQL fails (never passes silently)
/// without it.
pub fn require_base_url() -> String {
    base_url().unwrap_or_else(|| {
        panic!(
            "{URL_VAR} is not set: this test needs PostgreSQL. Run scripts/test-postgres \
             (it starts a throwaway cluster and runs the PostgreSQL tests)."
        )
    })
}

/// `url` with its sessions' `search_path` set to `schema`.
pub fn with_schema(url: &str, schema: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a postgres:// URL");
    parsed
        .query_pairs_mut()
        .append_pair("options[search_path]", schema);
    parsed.to_string()
}

/// A fresh, empty store location on the cluster at `base`: a schema of its own (cheaper than
/// a database: no catalog copy, nothing to clean up but the cluster), selected through the
/// URL's `search_path`. Change notifications are per schema too.
pub async fn fresh_database(base: &str) -> String {
    let name = format!(
        "clavis_test_{}",
        clavis_crypto::random::string(b"abcdefghijklmnopqrstuvwxyz0123456789", 16)
    );
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster at {base}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut conn)
        .await
        .expect("CREATE SCHEMA");
    let _ = conn.close().await;
    with_schema(base, &name)
}

/// A fresh database on the shared cluster (blocking; for tests without a runtime).
pub fn fresh_database_blocking(base: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fresh_database(base))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("pg-cluster")
}

fn run(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("run scripts/pg-cluster");
    assert!(
        out.status.success(),
        "scripts/pg-cluster {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A private cluster, for tests that stop and start the server. Destroyed on drop.
pub struct Cluster {
    root: tempfile::TempDir,
    /// Its maintenance database.
    pub url: String,
}

impl Cluster {
    /// initdb + start on a free loopback port.
    pub fn start() -> Self {
        let root = tempfile::Builder::new()
            .prefix("clavis-pg-")
            .tempdir()
            .unwrap();
        // The server runs as an unprivileged user when we are root: it must reach the dir.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let url = run(&["init", &Self::dir_of(&root)]);
        Self { root, url }
    }

    fn dir_of(root: &tempfile::TempDir) -> String {
        root.path().join("pg").display().to_string()
    }

    fn dir(&self) -> String {
        Self::dir_of(&self.root)
    }

    /// Stops the server; `immediate` is like a crash.
    pub fn stop(&self, mode: &str) {
        run(&["stop", &self.dir(), mode]);
    }

    /// Starts it again on the same port and data.
    pub fn resume(&self) {
        run(&["start", &self.dir()]);
    }

    /// Serves TLS (besides plain TCP) with this certificate chain and key; restarts.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        let cert = self.root.path().join("tls-cert.pem");
        let key = self.root.path().join("tls-key.pem");
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        run(&[
            "tls",
            &self.dir(),
            &cert.display().to_string(),
            &key.display().to_string(),
        ]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["destroy", &self.dir()])
            .output();
    }
}
