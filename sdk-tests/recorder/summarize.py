"""Prints a request log written by fake_server.py ($CLAVIS_FAKE_LOG) per endpoint.

    python3 sdk-tests/recorder/summarize.py /tmp/requests.jsonl

Ids are replaced by placeholders; each distinct (method, path, query,
content-type, body shape) is shown once, with its headers (minus host and
content-length), a body example and the response status.
"""

import base64
import json
import re
import sys

SUBS = [
    (re.compile(r"/clients/[A-Za-z0-9]{32}"), "/clients/{client_id}"),
    (re.compile(r"/credentials/cred_[1-9A-Za-z]+"), "/credentials/{credential_id}"),
    (re.compile(r"/client-grants/cgr_[A-Za-z0-9]+"), "/client-grants/{id}"),
    (re.compile(r"/resource-servers/[0-9a-f]{24}"), "/resource-servers/{id}"),
]
VALUE_SUBS = [
    (re.compile(r"(?<==)[A-Za-z0-9]{32}(?=&|$)"), "{client_id}"),
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+"), "{jwt}"),
    (re.compile(r"(client_secret(?:=|\":\s*\"))[^&\"]+"), r"\1{secret}"),
]


def shape(body: str, ctype: str | None):
    if not body:
        return "(empty)"
    if ctype and ctype.startswith("application/json"):
        try:
            v = json.loads(body)
        except ValueError:
            return "(invalid json)"
        if isinstance(v, dict):
            return "json{" + ",".join(f"{k}:{'null' if x is None else type(x).__name__}" for k, x in v.items()) + "}"
        return "json " + type(v).__name__
    return "form{" + ",".join(p.split("=")[0] for p in body.split("&")) + "}"


def clean(s: str) -> str:
    for rx, rep in VALUE_SUBS:
        s = rx.sub(rep, s)
    return s


def main() -> None:
    seen = {}
    for line in open(sys.argv[1]):
        e = json.loads(line)
        path = e["path"]
        for rx, rep in SUBS:
            path = rx.sub(rep, path)
        h = {k: v for k, v in e["headers"].items() if k not in ("host", "content-length")}
        if "auth0-client" in h:
            raw = h["auth0-client"]
            try:
                h["auth0-client"] += "  => " + base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_").decode()
            except Exception:
                try:
                    h["auth0-client"] += "  => " + base64.b64decode(raw).decode()
                except Exception:
                    pass
        key = (e["method"], path, clean(e["query"]), h.get("content-type"), shape(e["body"], h.get("content-type")),
               h.get("user-agent"), e["status"])
        if key in seen:
            seen[key]["n"] += 1
            continue
        seen[key] = {"n": 1, "e": e, "h": h}
    for (m, p, q, ct, sh, ua, _st), v in seen.items():
        e = v["e"]
        print(f"{m} {p}{'?' + q if q else ''}   -> {e['status']}   (x{v['n']})")
        print(f"  content-type: {ct}   body: {sh}")
        print("  headers: " + json.dumps(v["h"]))
        if e["body"]:
            print("  body example: " + clean(e["body"])[:400].replace("\n", "\\n"))
            m = re.search(r"client_assertion(?:=|\":\s*\")(eyJ[\w-]+)\.([\w-]+)\.", e["body"])
            if m:
                dec = [json.loads(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))) for x in m.groups()]
                print(f"  client_assertion header: {json.dumps(dec[0])}  claims: {json.dumps(dec[1])}")
        if e["status"] and e["status"] >= 400:
            print("  response: " + json.dumps(e["response"]))
        print()


if __name__ == "__main__":
    main()
