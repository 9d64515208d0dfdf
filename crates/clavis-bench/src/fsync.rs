//! How many durable commits the data directory's disk can do per second: append 4 KiB and
//! `fdatasync`, in a loop, from one thread. A PATCH acknowledged only after its transaction
//! is on disk cannot, one at a time, go faster than this; group commit can.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

/// The probe result.
#[derive(Debug, Clone, Serialize)]
pub struct FsyncRate {
    /// `fdatasync` calls per second.
    pub per_sec: f64,
    /// Mean time of one append + `fdatasync`, in milliseconds.
    pub mean_ms: f64,
}

/// Runs the probe in `dir` for about `seconds`.
pub fn run(dir: &Path, seconds: f64) -> Result<FsyncRate> {
    let path = dir.join("fsync-probe.tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let block = [0x5au8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        file.write_all(&block)?;
        file.sync_data()?;
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(FsyncRate {
        per_sec: n as f64 / elapsed,
        mean_ms: elapsed * 1000.0 / n.max(1) as f64,
    })
}
