#!/usr/bin/env python3
"""Where a start-up's time went (see the 1M start-ups in bench/run): CPU seconds of the
node and of the database server, and the machine's steal, iowait and idle shares, over the
window from `begin` to `end`.

  window.py begin [STORE_PID]      prints the window's opening state (one JSON line)
  window.py end STATE T0 T1 NODE_PID [STORE_PID]
                                   prints the start-up's figures as JSON: its seconds (from
                                   T0, the node's start, to T1, its first answer; `date
                                   +%s.%N`), the node's peak memory and the window's CPU

The node is a process started inside the window: all its CPU time counts (and, apart, the
part of it spent in the kernel, with its page faults and its threads' context switches).
The database server's is the postmaster's (with the children it has reaped) plus its live
children's, taken at both ends. CPU times are clock ticks in `/proc/<pid>/stat`, reported
in seconds.
"""
import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def machine():
    """The `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:9]
    return [int(x) for x in fields]


def fields(pid):
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces), or
    None once the process is gone. utime, stime, cutime, cstime are [11:15]; ppid is [1]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def server(pid):
    """The database server's ticks: the postmaster, its reaped children and its live ones."""
    if not pid:
        return 0
    total = sum(int(x) for x in (fields(pid) or [0] * 15)[11:15])
    for entry in os.listdir("/proc"):
        rest = fields(entry) if entry.isdigit() else None
        if rest and rest[1] == str(pid):
            total += int(rest[11]) + int(rest[12])
    return total


def switches(pid):
    """Context switches of the process's threads alive now (voluntary + involuntary): how
    often its threads stopped to wait or were put aside."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def peak_kb(pid):
    """The process's peak resident memory (VmHWM), kB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def main():
    if sys.argv[1] == "begin":
        store = sys.argv[2] if len(sys.argv) > 2 else None
        print(json.dumps({"stat": machine(), "store": server(store)}))
        return
    state = json.loads(open(sys.argv[2]).read())
    started, ready, node = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    store = sys.argv[6] if len(sys.argv) > 6 else None
    stat = [b - a for a, b in zip(state["stat"], machine())]
    total = sum(stat) or 1
    node_fields = fields(node) or [0] * 15
    user, system = (int(x) for x in node_fields[11:13])
    out = {
        "startup_seconds": round(ready - started, 3),
        "vm_hwm_kb": peak_kb(node),
        "node_cpu_seconds": round((user + system) / TICK, 2),
        # Of which in the kernel (page faults, reads, memory reclaim).
        "node_system_seconds": round(system / TICK, 2),
        # What the kernel time went to: pages first touched (minor faults), and threads
        # that stopped to wait or were put aside (context switches).
        "node_minor_faults": int(node_fields[7]),
        "node_context_switches": switches(node),
        "steal_pct": round(100 * stat[7] / total, 1),
        "iowait_pct": round(100 * stat[4] / total, 1),
        "idle_pct": round(100 * stat[3] / total, 1),
    }
    if store:
        out["store_cpu_seconds"] = round((server(store) - state["store"]) / TICK, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
