//! How the machine's CPU time was spent during a phase, from `/proc/stat`: on a shared
//! virtual machine the hypervisor can take a large share of it away (steal), and a ratio
//! between two phases means little when one of them lost more than the other. The report
//! prints both shares beside every phase.

use serde::Serialize;

/// The all-CPU line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    idle: u64,
    steal: u64,
    total: u64,
}

/// Shares of the machine's CPU time between two readings, in percent.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuShares {
    /// Taken by the hypervisor for other guests.
    pub steal_pct: f64,
    /// Idle (including waiting for I/O).
    pub idle_pct: f64,
}

impl CpuTimes {
    /// Reads `/proc/stat`; `None` where there is none (not Linux).
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        Self::parse(stat.lines().next()?)
    }

    fn parse(line: &str) -> Option<Self> {
        // cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is
        // already inside user and nice.
        let fields: Vec<u64> = line
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let first8 = fields.get(..8)?;
        Some(Self {
            idle: first8[3] + first8[4],
            steal: first8[7],
            total: first8.iter().sum(),
        })
    }

    /// The shares from `start` (a reading taken earlier, if there was one) until now.
    pub fn shares_since(start: Option<Self>) -> Option<CpuShares> {
        start?.shares_until(Self::now()?)
    }

    /// The shares between this reading and a later one.
    fn shares_until(self, later: Self) -> Option<CpuShares> {
        let total = later.total.checked_sub(self.total).filter(|&t| t > 0)? as f64;
        let share = |a: u64, b: u64| b.saturating_sub(a) as f64 * 100.0 / total;
        Some(CpuShares {
            steal_pct: share(self.steal, later.steal),
            idle_pct: share(self.idle, later.idle),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_two_readings() {
        let a = CpuTimes::parse("cpu  100 0 50 800 50 0 0 0 0 0");
        let b = CpuTimes::parse("cpu  400 0 100 900 50 0 0 350 0 0");
        let shares = a.zip(b).and_then(|(a, b)| a.shares_until(b));
        let shares = shares.map(|s| (s.steal_pct.round(), s.idle_pct.round()));
        assert_eq!(shares, Some((44.0, 13.0)));
        assert!(CpuTimes::parse("cpu0 1 2 3").is_none());
        assert!(a.zip(a).and_then(|(a, b)| a.shares_until(b)).is_none());
    }
}
