//! The replay guard's batch commits during a phase, read from the server's own histogram
//! (`clavis_jti_write_duration` on `/metrics`, the node started with `--metrics-listen`).
//! On PostgreSQL every accepted assertion waits for its batch's commit, so a token latency
//! tail either is the commits' or lies elsewhere: the report prints how many batches were
//! committed in the measured window and how many of them took longer than each of the
//! histogram's bounds.

use anyhow::{Context as _, Result, anyhow};
use prometheus_parse::{Scrape, Value};
use serde::Serialize;

/// The histogram's name as scraped (the server registers it in seconds).
const METRIC: &str = "clavis_jti_write_duration_seconds";

/// One reading of the histogram: each bucket's upper bound (seconds) and cumulative count,
/// in the order served (`+Inf` last).
#[derive(Debug)]
pub struct Reading(Vec<(f64, f64)>);

/// The batches committed between two readings.
#[derive(Debug, Clone, Serialize)]
pub struct Batches {
    /// Batches committed.
    pub batches: u64,
    /// For each finite bound of the histogram: the batches that took longer.
    pub slower_than: Vec<SlowerThan>,
}

/// Batches slower than a bound.
#[derive(Debug, Clone, Serialize)]
pub struct SlowerThan {
    /// The bound, in milliseconds.
    pub ms: f64,
    /// Batches whose commit took longer.
    pub batches: u64,
}

impl Reading {
    /// Scrapes `url` (plain HTTP) from a thread that is not a runtime's.
    pub fn scrape(url: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let text = runtime.block_on(async {
            reqwest::Client::new()
                .get(url)
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        })?;
        Self::parse(&text).with_context(|| format!("{url}: no {METRIC} histogram"))
    }

    fn parse(text: &str) -> Result<Self> {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?;
        scrape
            .samples
            .into_iter()
            .find_map(|s| match s.value {
                Value::Histogram(buckets) if s.metric == METRIC => Some(Self(
                    buckets.iter().map(|b| (b.less_than, b.count)).collect(),
                )),
                _ => None,
            })
            .ok_or_else(|| anyhow!("absent"))
    }

    /// What was committed between this reading and `later`.
    pub fn until(&self, later: &Self) -> Batches {
        let delta = |bound: f64, count: f64| -> f64 {
            let before = self
                .0
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c);
            (count - before).max(0.0)
        };
        let total = later
            .0
            .iter()
            .find(|(b, _)| b.is_infinite())
            .map_or(0.0, |&(b, c)| delta(b, c));
        Batches {
            batches: total as u64,
            slower_than: later
                .0
                .iter()
                .filter(|(b, _)| b.is_finite())
                .map(|&(b, c)| SlowerThan {
                    ms: b * 1000.0,
                    batches: (total - delta(b, c)).max(0.0) as u64,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn exposition(buckets: &[(&str, u64)], count: u64) -> String {
        let mut text = format!(
            "# HELP {METRIC} Time to write a batch.\n# TYPE {METRIC} histogram\n# UNIT {METRIC} seconds\n"
        );
        for (le, n) in buckets {
            text.push_str(&format!("{METRIC}_bucket{{le=\"{le}\"}} {n}\n"));
        }
        text.push_str(&format!("{METRIC}_sum 1.5\n{METRIC}_count {count}\n"));
        text.push_str("# TYPE other_total counter\nother_total 7\n");
        text
    }

    #[test]
    fn counts_the_batches_between_two_readings_and_the_slow_ones() {
        let before = Reading::parse(&exposition(
            &[("0.001", 10), ("0.005", 12), ("0.01", 13), ("+Inf", 13)],
            13,
        ))
        .unwrap();
        let after = Reading::parse(&exposition(
            &[("0.001", 100), ("0.005", 110), ("0.01", 114), ("+Inf", 117)],
            117,
        ))
        .unwrap();
        let b = before.until(&after);
        // 104 batches in the window: 90 under 1 ms, 8 more under 5 ms, 3 more under 10 ms,
        // 3 above.
        assert_eq!(b.batches, 104);
        let slower: Vec<(f64, u64)> = b.slower_than.iter().map(|s| (s.ms, s.batches)).collect();
        assert_eq!(slower, vec![(1.0, 14), (5.0, 6), (10.0, 3)]);
    }

    #[test]
    fn a_scrape_without_the_histogram_is_an_error() {
        assert!(Reading::parse("# TYPE other_total counter\nother_total 7\n").is_err());
    }
}
