"""Shared fixtures for the auth0-python v6 SDK tests against Clavis.

Env: CLAVIS_DOMAIN ("127.0.0.1:<port>"), CLAVIS_CLIENT_ID, CLAVIS_CLIENT_SECRET.
Trust: SSL_CERT_FILE (httpx: ManagementClient and its token provider) and
REQUESTS_CA_BUNDLE (requests: auth0.authentication.GetToken) = the server's ca.pem.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import re
import secrets
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"

RX_CLIENT_ID = re.compile(r"^[A-Za-z0-9]{32}$")
RX_CRED_ID = re.compile(r"^cred_[1-9A-HJ-NP-Za-km-z]{22}$")
RX_GRANT_ID = re.compile(r"^cgr_[A-Za-z0-9]{16}$")
RX_RS_ID = re.compile(r"^[0-9a-f]{24}$")
RX_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass(frozen=True)
class Env:
    domain: str
    client_id: str
    client_secret: str

    @property
    def mgmt_audience(self) -> str:
        return f"https://{self.domain}/api/v2/"

    @property
    def issuer(self) -> str:
        return f"https://{self.domain}/"


def _need(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        raise RuntimeError(f"environment variable {name} is required (see sdk-tests/SDK-REQUESTS.md)")
    return v


@pytest.fixture(scope="session")
def env() -> Env:
    return Env(_need("CLAVIS_DOMAIN"), _need("CLAVIS_CLIENT_ID"), _need("CLAVIS_CLIENT_SECRET"))


@pytest.fixture(scope="session")
def mgmt(env):
    from auth0.management import ManagementClient

    return ManagementClient(domain=env.domain, client_id=env.client_id, client_secret=env.client_secret)


@pytest.fixture(scope="session")
def expected() -> dict:
    return json.loads((FIXTURES / "expected.json").read_text())


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def uniq(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@dataclass(frozen=True)
class RsaKey:
    spki: str
    pkcs8: str
    kid: str


def rsa_key() -> RsaKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = key.public_key().public_numbers()

    def uint(n: int) -> str:
        return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    canonical = json.dumps({"e": uint(nums.e), "kty": "RSA", "n": uint(nums.n)}, separators=(",", ":"))
    return RsaKey(
        spki=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        pkcs8=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        kid=b64u(hashlib.sha256(canonical.encode()).digest()),
    )


def decode_jwt(token: str) -> tuple[dict, dict]:
    parts = token.split(".")
    assert len(parts) == 3, "access_token must be a three-part JWT"

    def dec(s: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))

    return dec(parts[0]), dec(parts[1])


def raw_json(http_response) -> object:
    """The JSON body of a `with_raw_response` call, as sent by the server (no model parsing)."""
    return http_response._response.json()


def assert_mgmt_error_body(err, status: int, error_code: str | None = None) -> None:
    body = err.body
    assert isinstance(body, dict), f"error body should be JSON, got {body!r}"
    assert body["statusCode"] == status
    assert isinstance(body["error"], str)
    assert isinstance(body["message"], str)
    if error_code is not None:
        assert body.get("errorCode") == error_code, body
