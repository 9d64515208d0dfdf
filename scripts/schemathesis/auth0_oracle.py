"""Writes the document that scripts/api-fuzz --oracle auth0 runs schemathesis with: Auth0's
own OpenAPI documents (docs/auth0/), restricted to the operations Clavis serves (those of
its served /api/v2/openapi.json), so that every response is checked against Auth0's
schema rather than against Clavis's description of itself.

Deviations Clavis keeps on purpose are declared once, each with its reason, in
docs/auth0/oracle-deviations.json (docs/contract.md section 9 points there); the document is
amended with them, and only them.

Usage: auth0_oracle.py <served openapi.json> <output.json>
"""

import copy
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
AUTH0_DOCS = [
    ROOT / "docs/auth0/auth0-management-openapi-subset.json",
    ROOT / "docs/auth0/auth0-management-openapi-next.json",
]
PREFIX = "/api/v2"

DEVIATIONS = ROOT / "docs/auth0/oracle-deviations.json"
ID_PARAMETER = re.compile(r"\{[^}]+\}")
LIST_ENVELOPES = "oneOf alternatives of list responses are read as anyOf"


def error_response(reason):
    """An error answer Auth0's document leaves out, in Auth0's error shape."""
    return {"description": f"Clavis deviation: {reason}",
            "content": {"application/json": {"schema": {
                "type": "object", "required": ["statusCode", "error", "message"],
                "properties": {"statusCode": {"type": "integer"}, "error": {"type": "string"},
                               "message": {"type": "string"}, "errorCode": {"type": "string"}}}}}}


def amend(out, deviations):
    """Applies the declared deviations to the oracle document."""
    for rule in deviations["status"]:
        status, applies_to = str(rule["status"]), rule["applies_to"]
        for path, item in out["paths"].items():
            for method, op in item.items():
                if method == "parameters":
                    continue
                params = op.get("parameters", []) + item.get("parameters", [])
                applies = {
                    "resource paths": bool(ID_PARAMETER.search(path)),
                    "query parameters": any(p.get("in") == "query" for p in params),
                }.get(applies_to, applies_to == f"{method.upper()} {path[len(PREFIX):]}")
                if applies:
                    op["responses"].setdefault(status, error_response(rule["reason"]))
    if any(r["rule"] == LIST_ENVELOPES for r in deviations["schema"]):
        for schema in out["components"]["schemas"].values():
            if (isinstance(schema, dict) and "oneOf" in schema
                    and any(alt.get("type") == "array" for alt in schema["oneOf"])):
                schema["anyOf"] = schema.pop("oneOf")
        # Inline list schemas (not under components) get the same reading.
        for item in out["paths"].values():
            for op in item.values():
                if not isinstance(op, dict):
                    continue
                for response in op.get("responses", {}).values():
                    for media in response.get("content", {}).values():
                        schema = media.get("schema", {})
                        if "oneOf" in schema and any(a.get("type") == "array" for a in schema["oneOf"]):
                            schema["anyOf"] = schema.pop("oneOf")


def main(served_path, out_path):
    served = json.loads(pathlib.Path(served_path).read_text())
    served_ops = {(path, method) for path, item in served["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")}
    docs = [json.loads(p.read_text()) for p in AUTH0_DOCS]
    out = copy.deepcopy(docs[0])
    out["servers"] = [{"url": "/"}]
    out["paths"] = {}
    out.setdefault("components", {}).setdefault("schemas", {})
    for doc in docs[1:]:
        for kind, items in doc.get("components", {}).items():
            target = out["components"].setdefault(kind, {})
            for name, value in items.items():
                target.setdefault(name, value)
    missing = []
    def shape(path):
        """A path template without its parameters' names (Clavis's and Auth0's differ)."""
        return re.sub(r"\{[^}]*\}", "{}", path)

    auth0_paths = {shape(p): p for d in docs for p in d["paths"]}
    for path, method in sorted(served_ops):
        if not path.startswith(PREFIX + "/"):
            continue
        auth0_path = auth0_paths.get(shape(path[len(PREFIX):]))
        op = auth0_path and next((d["paths"][auth0_path][method] for d in docs
                                  if method in d["paths"].get(auth0_path, {})), None)
        if op is None:
            missing.append(f"{method.upper()} {path}")
            continue
        item = out["paths"].setdefault(PREFIX + auth0_path, {})
        item[method] = copy.deepcopy(op)
        shared = next((d["paths"][auth0_path].get("parameters") for d in docs
                       if "parameters" in d["paths"].get(auth0_path, {})), None)
        if shared:
            item["parameters"] = shared
    amend(out, json.loads(DEVIATIONS.read_text()))
    pathlib.Path(out_path).write_text(json.dumps(out, indent=1))
    print(f"auth0 oracle: {sum(len(v) for v in out['paths'].values())} operations of Auth0's documents; "
          f"served but not in them (not checked by this oracle): {', '.join(missing) or 'none'}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
