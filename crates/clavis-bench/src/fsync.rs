//! How many durable commits the data directory's disk can do per second, from one thread,
//! two ways: appending 4 KiB + `fdatasync` (the file grows, so the file system also commits
//! its metadata), and overwriting 4 KiB blocks of a preallocated file + `fdatasync` (what a
//! SQLite WAL does once it has wrapped). A PATCH acknowledged only after its transaction is
//! on disk cannot, one at a time, beat the faster of the two; group commit can. The report
//! compares PATCH against the faster one.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

/// The probe result.
#[derive(Debug, Clone, Serialize)]
pub struct FsyncRate {
    /// The faster of the two modes, per second.
    pub per_sec: f64,
    /// Its mean time per durable write, in milliseconds.
    pub mean_ms: f64,
    /// Append + `fdatasync` per second.
    pub append_per_sec: f64,
    /// Overwrite in place + `fdatasync` per second.
    pub overwrite_per_sec: f64,
}

const BLOCK: usize = 4096;
const BLOCKS: u64 = 256;

fn probe(path: &Path, seconds: f64, overwrite: bool) -> Result<f64> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let block = [0x5au8; BLOCK];
    if overwrite {
        for _ in 0..BLOCKS {
            file.write_all(&block)?;
        }
        file.sync_all()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        if overwrite {
            file.seek(SeekFrom::Start((n % BLOCKS) * BLOCK as u64))?;
        }
        file.write_all(&block)?;
        file.sync_data()?;
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(path);
    Ok(n as f64 / elapsed)
}

/// Runs both probes in `dir`, about `seconds` each.
pub fn run(dir: &Path, seconds: f64) -> Result<FsyncRate> {
    let path = dir.join("fsync-probe.tmp");
    let append_per_sec = probe(&path, seconds, false)?;
    let overwrite_per_sec = probe(&path, seconds, true)?;
    let per_sec = append_per_sec.max(overwrite_per_sec);
    Ok(FsyncRate {
        per_sec,
        mean_ms: 1000.0 / per_sec.max(f64::MIN_POSITIVE),
        append_per_sec,
        overwrite_per_sec,
    })
}
