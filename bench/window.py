#!/usr/bin/env python3
"""Where a start-up's time went (see the 1M start-ups in bench/run): CPU seconds of the
node and of the database server, and the machine's steal, iowait and idle shares, over the
window from `begin` to `end`.

  window.py begin [STORE_PID]            prints the window's opening state (one JSON line)
  window.py end STATE NODE_PID [STORE_PID]   prints the window's figures as JSON

The node is a process started inside the window: all its CPU time counts (and, apart, the
part of it spent in the kernel). The database server's is the postmaster's (with the
children it has reaped) plus its live children's, taken at both ends. Times are in clock ticks (`/proc/<pid>/stat`), reported in seconds.
"""
import json
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def machine():
    """The `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:9]
    return [int(x) for x in fields]


def user_system(pid):
    """A process's user and system ticks; (0, 0) once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may hold spaces: fields count from after its closing ')'.
            rest = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return int(rest[11]), int(rest[12])


def ticks(pid, reaped=False):
    """A process's user + system ticks (and its reaped children's, when asked); 0 once gone."""
    if not reaped:
        return sum(user_system(pid))
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return sum(int(x) for x in rest[11:15])


def server(pid):
    """The database server's ticks: the postmaster, its reaped children and its live ones."""
    if not pid:
        return 0
    total = ticks(pid, reaped=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if rest[1] == str(pid):
            total += int(rest[11]) + int(rest[12])
    return total


def main():
    if sys.argv[1] == "begin":
        store = sys.argv[2] if len(sys.argv) > 2 else None
        print(json.dumps({"t": time.monotonic(), "stat": machine(), "store": server(store)}))
        return
    state = json.loads(open(sys.argv[2]).read())
    node = sys.argv[3]
    store = sys.argv[4] if len(sys.argv) > 4 else None
    stat = [b - a for a, b in zip(state["stat"], machine())]
    total = sum(stat) or 1
    out = {
        "window_seconds": round(time.monotonic() - state["t"], 3),
        "node_cpu_seconds": round(ticks(node) / TICK, 2),
        # Of which in the kernel (page faults, reads, memory reclaim).
        "node_system_seconds": round(user_system(node)[1] / TICK, 2),
        "steal_pct": round(100 * stat[7] / total, 1),
        "iowait_pct": round(100 * stat[4] / total, 1),
        "idle_pct": round(100 * stat[3] / total, 1),
    }
    if store:
        out["store_cpu_seconds"] = round((server(store) - state["store"]) / TICK, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
