//! The crypto ceiling: what one token costs in cryptography alone — verify one RS256-2048
//! client assertion and sign one RS256-2048 access token, keys parsed beforehand — on every
//! core, with no HTTP, no TLS and no database. The token endpoint cannot beat this number;
//! the bench reports the server as a fraction of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clavis_crypto::jws::{CompactJws, JwsAlg, SigningKey};
use serde::Serialize;

use crate::machine::CpuTimes;

/// The result of the probe.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    /// Threads used.
    pub threads: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// Tokens (verify + sign) per second, all threads.
    pub per_sec: f64,
    /// Signs alone per second on one thread (for the record).
    pub sign_per_sec_one_thread: f64,
    /// Verifies alone per second on one thread.
    pub verify_per_sec_one_thread: f64,
    /// The machine's CPU time stolen and idle during the all-threads phase.
    pub cpu: Option<crate::machine::CpuShares>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    scope: &'a str,
    gty: &'a str,
    azp: &'a str,
}

fn claims(now: i64) -> Claims<'static> {
    Claims {
        iss: "https://127.0.0.1:8443/",
        sub: "bench0000000000000000000000000001@clients",
        aud: "https://api.bench/",
        iat: now,
        exp: now + 86_400,
        scope: "read:things",
        gty: "client-credentials",
        azp: "bench0000000000000000000000000001",
    }
}

/// One token's worth of crypto.
fn one(assertion: &CompactJws, client_key: &SigningKey, server_key: &SigningKey) -> Result<()> {
    assertion
        .verify(client_key.public_key(), JwsAlg::RS256)
        .map_err(|e| anyhow!("verify: {e}"))?;
    let token = server_key
        .sign_jwt(&claims(1_800_000_000))
        .map_err(|e| anyhow!("sign: {e}"))?;
    std::hint::black_box(token);
    Ok(())
}

fn rate(seconds: f64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        f()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The probe's keys, parsed beforehand, and a client assertion to verify.
struct Fixture {
    client_key: Arc<SigningKey>,
    server_key: Arc<SigningKey>,
    assertion: Arc<CompactJws>,
}

impl Fixture {
    fn new() -> Result<Self> {
        let client_key = SigningKey::generate().map_err(|e| anyhow!("{e}"))?;
        let server_key = SigningKey::generate().map_err(|e| anyhow!("{e}"))?;
        let text = client_key
            .sign_jwt(&serde_json::json!({
                "iss": "bench", "sub": "bench", "aud": "https://127.0.0.1:8443/",
                "jti": "ceiling", "iat": 1_800_000_000i64, "exp": 1_800_000_240i64,
            }))
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Self {
            assertion: Arc::new(CompactJws::parse(&text).map_err(|e| anyhow!("{e}"))?),
            client_key: Arc::new(client_key),
            server_key: Arc::new(server_key),
        })
    }
}

/// Runs the probe for `seconds` on `threads` threads.
pub fn run(seconds: f64, threads: usize) -> Result<Ceiling> {
    let fixture = Fixture::new()?;
    let Fixture {
        client_key,
        server_key,
        assertion,
    } = &fixture;

    // Single-thread component rates, short, for the record.
    let sign_per_sec_one_thread = rate(seconds.min(2.0), || {
        std::hint::black_box(
            server_key
                .sign_jwt(&claims(1_800_000_000))
                .map_err(|e| anyhow!("{e}"))?,
        );
        Ok(())
    })?;
    let verify_per_sec_one_thread = rate(seconds.min(1.0), || {
        assertion
            .verify(client_key.public_key(), JwsAlg::RS256)
            .map_err(|e| anyhow!("{e}"))
    })?;

    let all = all_cores(seconds, threads, &fixture)?;
    Ok(Ceiling {
        threads,
        seconds: all.seconds,
        per_sec: all.per_sec,
        sign_per_sec_one_thread,
        verify_per_sec_one_thread,
        cpu: all.cpu,
    })
}

/// A short probe on every core, without the one-thread component rates: taken right before
/// and right after a load phase, so that the phase is compared with the machine as it was
/// during those seconds (on a shared virtual machine the speed drifts within minutes).
#[derive(Debug, Clone, Serialize)]
pub struct Bracket {
    /// Seconds measured.
    pub seconds: f64,
    /// Tokens (verify + sign) per second, all threads.
    pub per_sec: f64,
    /// The machine's CPU time stolen and idle during the probe.
    pub cpu: Option<crate::machine::CpuShares>,
}

/// Runs the all-cores part of the probe alone for `seconds` on `threads` threads.
pub fn bracket(seconds: f64, threads: usize) -> Result<Bracket> {
    all_cores(seconds, threads, &Fixture::new()?)
}

fn all_cores(seconds: f64, threads: usize, fixture: &Fixture) -> Result<Bracket> {
    let stop = Arc::new(AtomicBool::new(false));
    let before = CpuTimes::now();
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (a, c, s, stop) = (
                fixture.assertion.clone(),
                fixture.client_key.clone(),
                fixture.server_key.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || -> Result<u64> {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    one(&a, &c, &s)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    for h in handles {
        total += h.join().map_err(|_| anyhow!("probe thread failed"))??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Bracket {
        seconds: elapsed,
        per_sec: total as f64 / elapsed,
        cpu: CpuTimes::shares_since(before),
    })
}
