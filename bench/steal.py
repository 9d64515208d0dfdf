#!/usr/bin/env python3
"""Decides whether a phase is measured again because of steal (see `steady` in bench/run).

Arguments: the phase's path without `.json`, the number of attempts made, the most
attempts allowed, the steal limit (%). Prints `again` when the last attempt's steal is
above the limit and another attempt is allowed, otherwise the number of the attempt to
keep (the one with the least steal); writes every attempt's rate and steal to
<path>.attempts.json.
"""
import json
import sys

base, made, most, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
attempts = []
for n in range(1, made + 1):
    with open(f"{base}.json.try{n}") as f:
        d = json.load(f)
    steal = (d.get("cpu") or {}).get("steal_pct", 0.0)
    attempts.append({"attempt": n, "rps": d.get("rps"), "steal_pct": steal})
with open(f"{base}.attempts.json", "w") as f:
    json.dump(attempts, f)
if attempts[-1]["steal_pct"] > limit and made < most:
    print("again")
else:
    print(min(attempts, key=lambda a: a["steal_pct"])["attempt"])
