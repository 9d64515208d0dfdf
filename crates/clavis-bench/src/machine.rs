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

/// The CPU time (user + system) of a process and of every process below it, living or ended
/// and reaped, from `/proc/<pid>/stat`, in seconds: a server may be several processes (the
/// peer's Node workers, PostgreSQL's backends under its postmaster).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let mut procs = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(fields) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| process_ticks(&stat))
        {
            procs.insert(id, fields);
        }
    }
    procs.get(&pid)?;
    let (mut ticks, mut todo) = (0u64, vec![pid]);
    while let Some(p) = todo.pop() {
        if let Some(&(_, t)) = procs.get(&p) {
            ticks += t;
            todo.extend(
                procs
                    .iter()
                    .filter(|(_, (ppid, _))| *ppid == p)
                    .map(|(id, _)| *id),
            );
        }
    }
    // SAFETY: sysconf reads a constant of the C library and has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_sec > 0).then(|| ticks as f64 / per_sec as f64)
}

/// The parent pid and utime + stime + cutime + cstime (fields 4 and 14–17: the process's own
/// time and that of its reaped children) of a `/proc/<pid>/stat` line, in clock ticks. The
/// command name (field 2) is in parentheses and may hold spaces: fields are counted after it.
fn process_ticks(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let ppid = fields.first().and(fields.get(1))?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += fields.get(i)?.parse::<u64>().ok()?;
    }
    Some((ppid, ticks))
}

/// The server's CPU time over the measured window, per request answered in it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerCpu {
    /// The server process's pid.
    pub pid: u32,
    /// Its CPU seconds (user + system, with the processes below it) within the window.
    pub cpu_seconds: f64,
    /// Answers in the window (2xx and errors).
    pub requests: u64,
    /// Server CPU microseconds per answer.
    pub us_per_request: f64,
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

    #[test]
    fn process_ticks_after_the_name() {
        let line =
            "4242 (clavis (a) b) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 37 5 8 20 0 9 0 1 2 3";
        assert_eq!(process_ticks(line), Some((1, 300)));
        assert_eq!(process_ticks("4242 (x) S 1"), None);
        assert!(process_cpu_seconds(std::process::id()).is_some_and(|s| s >= 0.0));
    }
}
