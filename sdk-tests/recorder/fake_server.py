"""A small stand-in for Clavis that records every request the SDKs send.

It is NOT Clavis and is not used by `cargo test`. It exists so the SDK tests
can be exercised (and the SDKs' exact wire traffic captured) before or apart
from the real server. It follows the contract in
docs/contract.md closely enough for the lifecycle tests,
and takes the same command line and environment as `clavis serve`:

    CLAVIS_BOOTSTRAP_CLIENT_ID=... CLAVIS_BOOTSTRAP_CLIENT_SECRET=... \
    CLAVIS_FAKE_LOG=/tmp/requests.jsonl \
    sdk-tests/python/.venv/bin/python sdk-tests/recorder/fake_server.py \
        serve --listen 127.0.0.1:8443 --data-dir /tmp/fake

It writes <data-dir>/tls/ca.pem, serves HTTPS, answers GET /readyz, and
appends one JSON line per request to $CLAVIS_FAKE_LOG (method, path, query,
headers, raw body, response status and body). `summarize.py` beside this file
turns such a log into a readable per-endpoint listing.
Needs `cryptography` (present in sdk-tests/python/.venv).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import re
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MGMT_SCOPES = [
    f"{op}:{res}"
    for res in ("clients", "client_keys", "client_credentials", "resource_servers", "client_grants")
    for op in ("read", "create", "update", "delete")
]
SHORT = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
}
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def now_iso() -> str:
    t = dt.datetime.now(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def norm_time(value) -> str:
    if not isinstance(value, str):
        raise ApiError(400, "Payload validation error: 'Expected type string' on property expires_at.", "invalid_body")
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "Payload validation error: 'Object didn't pass validation for format date-time' on property expires_at.", "invalid_body")
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def iso_of(d: dt.datetime) -> str:
    return d.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def bad_body(msg: str) -> ApiError:
    return ApiError(400, f"Payload validation error: '{msg}'.", "invalid_body")


def check_props(body, allowed: set[str]):
    if not isinstance(body, dict):
        raise bad_body("Expected type object")
    for k in body:
        if k not in allowed:
            raise bad_body(f"Additional properties not allowed: {k}")


class State:
    def __init__(self, domain: str, boot_id: str, boot_secret: str):
        self.lock = threading.Lock()
        self.domain = domain
        self.hmac_key = secrets.token_bytes(32)
        self.clients: dict[str, dict] = {}
        self.creds: dict[str, list[dict]] = {}
        self.rs: dict[str, dict] = {}
        self.grants: dict[str, dict] = {}
        self.used_jti: set[str] = set()
        mgmt = {
            "id": secrets.token_hex(12),
            "name": "Auth0 Management API",
            "identifier": self.mgmt_aud,
            "is_system": True,
            "scopes": [{"value": s, "description": s} for s in MGMT_SCOPES],
            "signing_alg": "RS256",
            "token_lifetime": 86400,
            "allow_offline_access": False,
            "skip_consent_for_verifiable_first_party_clients": False,
        }
        self.rs[mgmt["id"]] = mgmt
        self.new_client({"name": "bootstrap", "app_type": "non_interactive", "grant_types": ["client_credentials"]},
                        client_id=boot_id, secret=boot_secret)
        gid = "cgr_" + rand(ALNUM, 16)
        self.grants[gid] = {"id": gid, "client_id": boot_id, "audience": self.mgmt_aud, "scope": list(MGMT_SCOPES)}

    @property
    def mgmt_aud(self) -> str:
        return f"https://{self.domain}/api/v2/"

    # ---- clients
    def new_client(self, body: dict, client_id: str | None = None, secret: str | None = None) -> dict:
        c = {
            "client_id": client_id or rand(ALNUM, 32),
            "name": body["name"],
            "description": body.get("description"),
            "app_type": body.get("app_type"),
            "is_first_party": body.get("is_first_party", True),
            "grant_types": body.get("grant_types", ["authorization_code", "implicit", "refresh_token", "client_credentials"]),
            "client_secret": secret or b64u(secrets.token_bytes(48)),
            "token_endpoint_auth_method": body.get("token_endpoint_auth_method", "client_secret_post"),
            "client_authentication_methods": None,
            "jwt_configuration": {"lifetime_in_seconds": 36000, "secret_encoded": False, "alg": "RS256"},
            "client_metadata": body.get("client_metadata", {}),
            "created_at": now_iso(),
        }
        self.clients[c["client_id"]] = c
        self.creds[c["client_id"]] = []
        return c

    def render_client(self, c: dict, scopes: set[str]) -> dict:
        out = {}
        for k, v in c.items():
            if v is None:
                continue
            if k == "client_secret" and (c["client_authentication_methods"] or not scopes & {"read:client_keys", "read:client_credentials"}):
                continue
            if k == "token_endpoint_auth_method" and c["client_authentication_methods"]:
                continue
            out[k] = v
        return out

    def client(self, cid: str) -> dict:
        c = self.clients.get(cid)
        if not c:
            raise ApiError(404, "The client does not exist", "inexistent_client")
        return c

    # ---- credentials
    def cred(self, cid: str, cred_id: str) -> dict:
        self.client(cid)
        for cr in self.creds[cid]:
            if cr["id"] == cred_id:
                return cr
        raise ApiError(404, "The credential does not exist", "inexistent_credential")

    @staticmethod
    def render_cred(cr: dict) -> dict:
        order = {
            "public_key": ["id", "credential_type", "kid", "alg", "name", "created_at", "updated_at", "expires_at"],
            "cert_subject_dn": ["id", "credential_type", "name", "subject_dn", "created_at", "updated_at", "expires_at"],
            "x509_cert": ["id", "credential_type", "name", "thumbprint_sha256", "created_at", "updated_at", "expires_at"],
        }[cr["credential_type"]]
        return {k: cr[k] for k in order if cr.get(k) is not None}

    def create_cred(self, cid: str, body: dict) -> dict:
        self.client(cid)
        check_props(body, {"credential_type", "name", "pem", "subject_dn", "alg", "parse_expiry_from_cert", "expires_at", "kid"})
        ctype = body.get("credential_type")
        if ctype not in ("public_key", "cert_subject_dn", "x509_cert"):
            raise bad_body("No enum match for: credential_type")
        now = now_iso()
        cr = {"id": "cred_" + rand(B58, 22), "credential_type": ctype, "name": body.get("name", ""), "created_at": now, "updated_at": now}
        pem = body.get("pem")
        if ctype == "public_key":
            if not isinstance(pem, str):
                raise bad_body("Missing required property: pem")
            cert = None
            try:
                if "CERTIFICATE" in pem:
                    cert = x509.load_pem_x509_certificate(pem.encode())
                    key = cert.public_key()
                else:
                    key = serialization.load_pem_public_key(pem.encode())
            except Exception:
                raise bad_body("Invalid PEM")
            if not isinstance(key, rsa.RSAPublicKey) or not 2048 <= key.key_size <= 4096:
                raise bad_body("Key must be RSA with a modulus of 2048 to 4096 bits")
            nums = key.public_numbers()
            jwk = json.dumps({"e": b64u(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")), "kty": "RSA",
                              "n": b64u(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big"))}, separators=(",", ":"))
            cr["kid"] = body.get("kid") or b64u(hashlib.sha256(jwk.encode()).digest())
            cr["alg"] = body.get("alg", "RS256")
            cr["_key"] = jwk
            if body.get("parse_expiry_from_cert"):
                if cert is None:
                    raise bad_body("parse_expiry_from_cert requires a certificate")
                cr["expires_at"] = iso_of(cert.not_valid_after_utc)
            elif body.get("expires_at") is not None:
                cr["expires_at"] = norm_time(body["expires_at"])
            if any(o.get("_key") == jwk for o in self.creds[cid]):
                raise ApiError(400, "credentials contains public keys that already exist in client", "invalid_body")
        else:
            if ctype == "cert_subject_dn" and isinstance(body.get("subject_dn"), str) and pem is None:
                cr["subject_dn"] = body["subject_dn"]
            else:
                if not isinstance(pem, str):
                    raise bad_body("Missing required property: pem")
                try:
                    cert = x509.load_pem_x509_certificate(pem.encode())
                except Exception:
                    raise bad_body("Invalid PEM")
                if ctype == "cert_subject_dn":
                    cr["subject_dn"] = "\n".join(f"{SHORT.get(a.oid, a.oid.dotted_string)}={a.value}" for a in cert.subject)
                else:
                    cr["thumbprint_sha256"] = b64u(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
                    cr["expires_at"] = iso_of(cert.not_valid_after_utc)
        if len(self.creds[cid]) >= 4:
            raise ApiError(400, "A client can have a maximum of 4 credentials.", "invalid_body")
        self.creds[cid].append(cr)
        return cr

    def attached_ids(self, cid: str) -> set[str]:
        cam = self.clients[cid]["client_authentication_methods"] or {}
        return {x["id"] for m in cam.values() for x in m.get("credentials", [])}

    # ---- resource servers / grants
    def rs_by(self, key: str) -> dict:
        for r in self.rs.values():
            if r["id"] == key or r["identifier"] == key:
                return r
        raise ApiError(404, "The resource server does not exist", "inexistent_resource_server")

    def grant(self, gid: str) -> dict:
        g = self.grants.get(gid)
        if not g:
            raise ApiError(404, "The client grant does not exist", "inexistent_client_grant")
        return g

    def issue(self, client_id: str, audience: str, scope_req: str | None) -> dict:
        r = next((r for r in self.rs.values() if r["identifier"] == audience), None)
        if r is None:
            raise OAuthError(403, "access_denied", f"Service not enabled within domain: {audience}")
        g = next((g for g in self.grants.values() if g["client_id"] == client_id and g["audience"] == audience), None)
        if g is None:
            raise OAuthError(403, "access_denied", f'Client is not authorized to access "{audience}". You might probably want to create a "client-grant" associated to this API.')
        scopes = list(g["scope"])
        if scope_req:
            scopes = [s for s in scope_req.split() if s in scopes]
        iat = int(time.time())
        claims = {"iss": f"https://{self.domain}/", "sub": f"{client_id}@clients", "aud": audience, "iat": iat,
                  "exp": iat + r["token_lifetime"], "gty": "client-credentials", "azp": client_id}
        if scopes:
            claims["scope"] = " ".join(scopes)
        head = b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "fake"}).encode())
        pay = b64u(json.dumps(claims).encode())
        sig = b64u(hmac.new(self.hmac_key, f"{head}.{pay}".encode(), hashlib.sha256).digest())
        out = {"access_token": f"{head}.{pay}.{sig}"}
        if scopes:
            out["scope"] = " ".join(scopes)
        out.update({"expires_in": r["token_lifetime"], "token_type": "Bearer"})
        return out

    def verify(self, token: str) -> dict:
        try:
            head, pay, sig = token.split(".")
            good = b64u(hmac.new(self.hmac_key, f"{head}.{pay}".encode(), hashlib.sha256).digest())
            claims = json.loads(base64.urlsafe_b64decode(pay + "=" * (-len(pay) % 4)))
        except Exception:
            raise ApiError(401, "Invalid token")
        if not hmac.compare_digest(good, sig):
            raise ApiError(401, "Invalid token")
        if claims["aud"] != self.mgmt_aud:
            raise ApiError(401, "Bad audience")
        return claims


class OAuthError(Exception):
    def __init__(self, status: int, error: str, desc: str):
        super().__init__(desc)
        self.status, self.error, self.desc = status, error, desc


def page_params(q: dict) -> tuple[int, int, bool]:
    try:
        page = int(q.get("page", "0"))
        per_page = int(q.get("per_page", "50"))
    except ValueError:
        raise ApiError(400, "Query validation error: 'Expected type integer' on property page.", "invalid_query_string")
    return page, per_page, q.get("include_totals") == "true"


def paged(items: list, q: dict, key: str):
    page, per_page, totals = page_params(q)
    chunk = items[page * per_page:(page + 1) * per_page]
    if totals:
        return {"start": page * per_page, "limit": per_page, "total": len(items), key: chunk}
    return chunk


def parse_cert_assertion(state: State, form: dict) -> str:
    # Minimal private_key_jwt support: verify the RS256/RS384/PS256 signature
    # against the client's attached public_key credentials.
    from cryptography.hazmat.primitives.asymmetric import padding
    token = form.get("client_assertion", "")
    try:
        h, p, s = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
        claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        sig = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except Exception:
        raise OAuthError(401, "invalid_client", "Invalid client assertion")
    cid = claims.get("iss")
    if cid not in state.clients or claims.get("sub") != cid:
        raise OAuthError(401, "invalid_client", "Invalid client assertion")
    if claims.get("aud") not in (f"https://{state.domain}/", f"https://{state.domain}", f"https://{state.domain}/oauth/token"):
        raise OAuthError(401, "invalid_client", "Invalid audience")
    now = time.time()
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] + 10 < now:
        raise OAuthError(401, "invalid_client", "Expired assertion")
    jti = claims.get("jti")
    if not jti or jti in state.used_jti:
        raise OAuthError(401, "invalid_client", "jti missing or replayed")
    attached = state.attached_ids(cid)
    for cr in state.creds[cid]:
        if cr["id"] not in attached or cr["credential_type"] != "public_key" or cr["alg"] != header.get("alg"):
            continue
        jwk = json.loads(cr["_key"])
        n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big")
        e = int.from_bytes(base64.urlsafe_b64decode(jwk["e"] + "=" * (-len(jwk["e"]) % 4)), "big")
        key = rsa.RSAPublicNumbers(e, n).public_key()
        alg = header.get("alg")
        pad = padding.PSS(padding.MGF1(hashes.SHA256()), 32) if alg == "PS256" else padding.PKCS1v15()
        hsh = hashes.SHA384() if alg == "RS384" else hashes.SHA256()
        try:
            key.verify(sig, f"{h}.{p}".encode(), pad, hsh)
        except Exception:
            continue
        state.used_jti.add(jti)
        return cid
    raise OAuthError(401, "invalid_client", "Invalid client assertion")


SCOPE = {
    ("GET", "clients"): ["read:clients", "read:client_keys"],
    ("POST", "clients"): ["create:clients"],
    ("GET", "client"): ["read:clients", "read:client_keys"],
    ("PATCH", "client"): ["update:clients", "update:client_keys"],
    ("DELETE", "client"): ["delete:clients"],
    ("POST", "rotate"): ["update:client_keys"],
    ("GET", "creds"): ["read:client_credentials"],
    ("POST", "creds"): ["create:client_credentials"],
    ("GET", "cred"): ["read:client_credentials"],
    ("PATCH", "cred"): ["update:client_credentials"],
    ("DELETE", "cred"): ["delete:client_credentials"],
    ("GET", "rss"): ["read:resource_servers"],
    ("POST", "rss"): ["create:resource_servers"],
    ("GET", "rs"): ["read:resource_servers"],
    ("PATCH", "rs"): ["update:resource_servers"],
    ("DELETE", "rs"): ["delete:resource_servers"],
    ("GET", "grants"): ["read:client_grants"],
    ("POST", "grants"): ["create:client_grants"],
    ("GET", "grant"): ["read:client_grants"],
    ("PATCH", "grant"): ["update:client_grants"],
    ("DELETE", "grant"): ["delete:client_grants"],
}
ROUTES = [
    (re.compile(r"^/api/v2/clients$"), "clients"),
    (re.compile(r"^/api/v2/clients/([^/]+)$"), "client"),
    (re.compile(r"^/api/v2/clients/([^/]+)/rotate-secret$"), "rotate"),
    (re.compile(r"^/api/v2/clients/([^/]+)/credentials$"), "creds"),
    (re.compile(r"^/api/v2/clients/([^/]+)/credentials/([^/]+)$"), "cred"),
    (re.compile(r"^/api/v2/resource-servers$"), "rss"),
    (re.compile(r"^/api/v2/resource-servers/([^/]+)$"), "rs"),
    (re.compile(r"^/api/v2/client-grants$"), "grants"),
    (re.compile(r"^/api/v2/client-grants/([^/]+)$"), "grant"),
]
CLIENT_PROPS = {"name", "description", "app_type", "is_first_party", "grant_types", "token_endpoint_auth_method",
                "client_authentication_methods", "client_metadata", "jwt_configuration", "callbacks", "oidc_conformant"}


def make_handler(state: State, log_path: str | None):
    log_lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def _send(self, status: int, body, extra: dict | None = None):
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("x-ratelimit-limit", "50")
            self.send_header("x-ratelimit-remaining", "49")
            self.send_header("x-ratelimit-reset", str(int(time.time()) + 1))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if raw:
                self.wfile.write(raw)
            self._status, self._resp = status, body

        def _record(self, raw: bytes):
            if not log_path:
                return
            u = urllib.parse.urlsplit(self.path)
            entry = {
                "method": self.command,
                "path": u.path,
                "query": u.query,
                "headers": {k.lower(): (v if k.lower() != "authorization" else v[:7] + "<token>") for k, v in self.headers.items()},
                "body": raw.decode("utf-8", "replace"),
                "status": getattr(self, "_status", None),
                "response": getattr(self, "_resp", None),
            }
            with log_lock, open(log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

        def _handle(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                with state.lock:
                    self._dispatch(raw)
            except ApiError as e:
                body = {"statusCode": e.status, "error": REASONS.get(e.status, "Error"), "message": e.message}
                if e.code:
                    body["errorCode"] = e.code
                self._send(e.status, body, {"WWW-Authenticate": "Bearer"} if e.status == 401 else None)
            except OAuthError as e:
                self._send(e.status, {"error": e.error, "error_description": e.desc})
            except Exception as e:  # pragma: no cover - debugging aid
                self._send(500, {"statusCode": 500, "error": "Internal Server Error", "message": repr(e)})
            self._record(raw)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        def _json(self, raw: bytes):
            ct = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ct == "application/x-www-form-urlencoded":
                return dict(urllib.parse.parse_qsl(raw.decode()))
            try:
                return json.loads(raw or b"null")
            except ValueError:
                raise bad_body("Invalid JSON")

        def _dispatch(self, raw: bytes):
            u = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(u.query))
            if u.path == "/readyz" and self.command == "GET":
                return self._send(200, {"status": "ok"})
            if u.path == "/oauth/token" and self.command == "POST":
                return self._token(raw)
            for rx, name in ROUTES:
                m = rx.match(u.path)
                if m:
                    break
            else:
                raise ApiError(404, "Not Found")
            args = [urllib.parse.unquote(a) for a in m.groups()]
            need = SCOPE.get((self.command, name))
            if need is None:
                raise ApiError(404, "Not Found")
            auth = self.headers.get("Authorization") or ""
            if not auth.startswith("Bearer "):
                raise ApiError(401, "Missing authentication")
            claims = state.verify(auth[7:])
            scopes = set(claims.get("scope", "").split())
            if not scopes & set(need):
                raise ApiError(403, f"Insufficient scope, expected any of: {','.join(need)}", "insufficient_scope")
            body = self._json(raw) if self.command in ("POST", "PATCH") and raw else None
            getattr(self, f"_{name}")(args, q, body, scopes)

        def _token(self, raw: bytes):
            form = self._json(raw)
            if not isinstance(form, dict):
                raise OAuthError(400, "invalid_request", "Invalid request body")
            form = {k: v for k, v in form.items() if v is not None}
            if form.get("grant_type") != "client_credentials":
                raise OAuthError(400, "unsupported_grant_type", "Unsupported grant type")
            if "client_assertion" in form:
                cid = parse_cert_assertion(state, form)
            else:
                cid = form.get("client_id")
                secret = form.get("client_secret")
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):
                    cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                c = state.clients.get(cid)
                if not c or c["client_authentication_methods"] or not secret or not hmac.compare_digest(secret, c["client_secret"]):
                    raise OAuthError(401, "access_denied", "Unauthorized")
            c = state.clients[cid]
            if "client_credentials" not in c["grant_types"]:
                raise OAuthError(403, "unauthorized_client", "Grant type 'client_credentials' not allowed for the client.")
            if not form.get("audience"):
                raise OAuthError(400, "invalid_request", "Missing audience")
            self._send(200, state.issue(cid, form["audience"], form.get("scope")), {"Cache-Control": "no-store"})

        # ---- clients
        def _clients(self, args, q, body, scopes):
            if self.command == "GET":
                items = [state.render_client(c, scopes) for c in state.clients.values()]
                return self._send(200, paged(items, q, "clients"))
            check_props(body, CLIENT_PROPS)
            if not isinstance(body.get("name"), str):
                raise bad_body("Missing required property: name")
            c = state.new_client(body)
            self._send(201, state.render_client(c, scopes))

        def _client(self, args, q, body, scopes):
            c = state.client(args[0])
            if self.command == "GET":
                return self._send(200, state.render_client(c, scopes))
            if self.command == "DELETE":
                del state.clients[args[0]]
                del state.creds[args[0]]
                for gid in [g["id"] for g in state.grants.values() if g["client_id"] == args[0]]:
                    del state.grants[gid]
                return self._send(204, None)
            check_props(body, CLIENT_PROPS)
            if "client_authentication_methods" in body:
                cam = body["client_authentication_methods"]
                if cam is not None:
                    if "update:client_credentials" not in scopes:
                        raise ApiError(403, "Insufficient scope, expected any of: update:client_credentials", "insufficient_scope")
                    if not isinstance(cam, dict) or len(cam) != 1:
                        raise bad_body("client_authentication_methods must hold exactly one method")
                    (method, val), = cam.items()
                    want = {"private_key_jwt": "public_key", "tls_client_auth": "cert_subject_dn",
                            "self_signed_tls_client_auth": "x509_cert"}.get(method)
                    if want is None or not isinstance(val, dict) or set(val) != {"credentials"}:
                        raise bad_body("Invalid client_authentication_methods")
                    refs = val["credentials"]
                    if len(refs) > 2:
                        raise bad_body(f"Array is too long ({len(refs)}), maximum 2")
                    for ref in refs:
                        if set(ref) != {"id"} or state.cred(args[0], ref["id"])["credential_type"] != want:
                            raise bad_body("Invalid credential reference")
                    if body.get("token_endpoint_auth_method") is not None:
                        raise bad_body("token_endpoint_auth_method must be null with client_authentication_methods")
                c["client_authentication_methods"] = cam
            for k, v in body.items():
                if k in ("client_authentication_methods",):
                    continue
                if k == "token_endpoint_auth_method" and v is None:
                    c[k] = None
                    continue
                c[k] = v
            if c["client_authentication_methods"] is None and c["token_endpoint_auth_method"] is None:
                c["token_endpoint_auth_method"] = "client_secret_post"
            self._send(200, state.render_client(c, scopes))

        def _rotate(self, args, q, body, scopes):
            c = state.client(args[0])
            if c["client_authentication_methods"]:
                raise bad_body("Cannot rotate the secret of a client using client_authentication_methods")
            c["client_secret"] = b64u(secrets.token_bytes(48))
            self._send(200, state.render_client(c, scopes | {"read:client_keys"}))

        # ---- credentials
        def _creds(self, args, q, body, scopes):
            if self.command == "GET":
                state.client(args[0])
                return self._send(200, [state.render_cred(cr) for cr in state.creds[args[0]]])
            self._send(201, state.render_cred(state.create_cred(args[0], body)))

        def _cred(self, args, q, body, scopes):
            cr = state.cred(*args)
            if self.command == "GET":
                return self._send(200, state.render_cred(cr))
            if self.command == "DELETE":
                if cr["id"] in state.attached_ids(args[0]):
                    raise ApiError(400, "Cannot delete credential still associated with a client", "invalid_body")
                state.creds[args[0]].remove(cr)
                return self._send(204, None)
            check_props(body, {"expires_at"})
            if "expires_at" not in body:
                raise bad_body("Too few properties defined (0), minimum 1")
            cr["expires_at"] = None if body["expires_at"] is None else norm_time(body["expires_at"])
            cr["updated_at"] = now_iso()
            self._send(200, state.render_cred(cr))

        # ---- resource servers
        def _rss(self, args, q, body, scopes):
            if self.command == "GET":
                return self._send(200, paged(list(state.rs.values()), q, "resource_servers"))
            check_props(body, {"name", "identifier", "scopes", "signing_alg", "token_lifetime", "allow_offline_access",
                               "skip_consent_for_verifiable_first_party_clients"})
            if not isinstance(body.get("identifier"), str):
                raise bad_body("Missing required property: identifier")
            if any(r["identifier"] == body["identifier"] for r in state.rs.values()):
                raise ApiError(409, "A resource server with the same identifier already exists", "conflict")
            r = {"id": secrets.token_hex(12), "name": body.get("name", body["identifier"]), "identifier": body["identifier"],
                 "is_system": False, "scopes": body.get("scopes", []), "signing_alg": body.get("signing_alg", "RS256"),
                 "token_lifetime": body.get("token_lifetime", 86400),
                 "allow_offline_access": body.get("allow_offline_access", False),
                 "skip_consent_for_verifiable_first_party_clients": body.get("skip_consent_for_verifiable_first_party_clients", False)}
            state.rs[r["id"]] = r
            self._send(201, r)

        def _rs(self, args, q, body, scopes):
            r = state.rs_by(args[0])
            if self.command == "GET":
                return self._send(200, r)
            if r["is_system"]:
                raise bad_body("The Management API cannot be changed")
            if self.command == "DELETE":
                del state.rs[r["id"]]
                return self._send(204, None)
            check_props(body, {"name", "scopes", "signing_alg", "token_lifetime", "allow_offline_access",
                               "skip_consent_for_verifiable_first_party_clients"})
            r.update(body)
            self._send(200, r)

        # ---- client grants
        def _grants(self, args, q, body, scopes):
            if self.command == "GET":
                items = [g for g in state.grants.values()
                         if q.get("audience") in (None, g["audience"]) and q.get("client_id") in (None, g["client_id"])]
                if "take" in q or "from" in q:
                    start = int(q.get("from") or 0)
                    take = int(q.get("take") or 50)
                    out = {"client_grants": items[start:start + take]}
                    if start + take < len(items):
                        out["next"] = str(start + take)
                    return self._send(200, out)
                return self._send(200, paged(items, q, "client_grants"))
            check_props(body, {"client_id", "audience", "scope"})
            state.client(body.get("client_id", ""))
            try:
                state.rs_by(body.get("audience", ""))
            except ApiError:
                raise ApiError(404, "The resource server does not exist", "inexistent_resource_server")
            if any(g["client_id"] == body["client_id"] and g["audience"] == body["audience"] for g in state.grants.values()):
                raise ApiError(409, "A client grant for this client and audience already exists", "conflict")
            g = {"id": "cgr_" + rand(ALNUM, 16), "client_id": body["client_id"], "audience": body["audience"],
                 "scope": body.get("scope", [])}
            state.grants[g["id"]] = g
            self._send(201, g)

        def _grant(self, args, q, body, scopes):
            g = state.grant(args[0])
            if self.command == "GET":
                return self._send(200, g)
            if self.command == "DELETE":
                del state.grants[g["id"]]
                return self._send(204, None)
            check_props(body, {"scope"})
            g.update(body)
            self._send(200, g)

    return H


def make_tls(tls_dir: pathlib.Path) -> ssl.SSLContext:
    tls_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-clavis local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    import ipaddress
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tls_dir / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tls_dir / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")
    tmp = tls_dir / "ca.pem.tmp"
    tmp.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tmp.rename(tls_dir / "ca.pem")
    return ctx


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["serve"])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--data-dir", required=True)
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    boot_id = os.environ["CLAVIS_BOOTSTRAP_CLIENT_ID"]
    boot_secret = os.environ["CLAVIS_BOOTSTRAP_CLIENT_SECRET"]
    state = State(f"{host}:{port}", boot_id, boot_secret)
    ctx = make_tls(pathlib.Path(a.data_dir) / "tls")
    srv = http.server.ThreadingHTTPServer((host, int(port)), make_handler(state, os.environ.get("CLAVIS_FAKE_LOG")))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print(f"fake clavis listening on https://{host}:{port}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
