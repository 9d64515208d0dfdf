#!/usr/bin/env python3
"""One line about one phase's JSON result (for bench/run's progress output)."""
import json
import sys

r = json.load(open(sys.argv[1]))
label = sys.argv[2] if len(sys.argv) > 2 else ""
err = r.get("sample_error") or ""
srv = r.get("server_cpu")
srv = f" server {srv['us_per_request']:.0f} µs/req" if srv and srv.get("requests") else ""
print(f"{label} {r['rps']:.0f}/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms "
      f"p99.9 {r['p999_ms']:.2f} ms errors {r['errors']}{srv}{' exhausted' if r.get('exhausted') else ''} {err}")
