"""Schemathesis hooks for fuzzing Clavis (loaded by scripts/api-fuzz).

- Authentication: a fresh Management API token from POST /oauth/token every few seconds,
  with the bootstrap admin's client_credentials, sent from 127.0.0.2: the fuzzer sends wrong
  secrets naming the admin from 127.0.0.1, and Clavis's brute-force bound then refuses that
  client id from that address (SECURITY.md) — an operator elsewhere is not refused. The fuzzer rotates and revokes signing
  keys, which invalidates tokens signed by a revoked key; a short refresh keeps the run
  authenticated (a 401 in between is documented and accepted).
- The fuzzer's own admin client and its grant are off limits: a request that would patch,
  rotate or delete them (and so end the run's authentication) is sent to an id that does
  not exist instead, which still exercises the operation.
- PATCH /tenants/settings: a generated `default_token_quota.clients` quota would apply to the
  fuzzer's admin client too and, once spent, refuse its token refreshes (429); it is sent
  with `enforce: false` instead (counted and reported, never refusing), which still
  exercises the operation.
- POST /client-grants: half of the generated bodies get the Management API's identifier as
  `audience`, so that grants get created (with a client from a POST /clients link) and the
  get/patch/delete links after them are exercised.
"""

import os

import requests
import schemathesis
from hypothesis.internal import lambda_sources
from requests.adapters import HTTPAdapter

# Hypothesis describes filter lambdas by parsing their source with `ast.parse`. Deep inside
# schemathesis's coverage phase (Auth0's query schemas nest deeply), CPython 3.11 before
# 3.11.9 can raise `SystemError: AST constructor recursion depth mismatch` there (CPython
# gh-106905), which schemathesis reports as a runtime error of the operation and which ends
# that operation's coverage cases. The description is only a label: when it cannot be made,
# Hypothesis's own "unknown" label stands in, and generation goes on unchanged.
_describe_lambda = lambda_sources._lambda_description


def _lambda_description_or_unknown(f, *args, **kwargs):
    try:
        return _describe_lambda(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description_or_unknown

BASE_URL = os.environ["CLAVIS_BASE_URL"].rstrip("/")
CA_FILE = os.environ["CLAVIS_CA_FILE"]
CLIENT_ID = os.environ["CLAVIS_FUZZ_CLIENT_ID"]
CLIENT_SECRET = os.environ["CLAVIS_FUZZ_CLIENT_SECRET"]
AUDIENCE = BASE_URL + "/api/v2/"


PROTECTED_ID = "protected-by-the-fuzz-harness"
_admin_grant_ids = set()


class _FromOperatorAddress(HTTPAdapter):
    """Connections from 127.0.0.2 (any 127/8 address is this machine's loopback)."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = ("127.0.0.2", 0)
        super().init_poolmanager(*args, **kwargs)


_operator = requests.Session()
_operator.mount("https://", _FromOperatorAddress())


def _token():
    response = _operator.post(
        BASE_URL + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "audience": AUDIENCE,
        },
        verify=CA_FILE,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def _remember_admin_grants(token):
    if _admin_grant_ids:
        return
    response = requests.get(
        BASE_URL + "/api/v2/client-grants",
        params={"client_id": CLIENT_ID},
        headers={"Authorization": f"Bearer {token}"},
        verify=CA_FILE,
        timeout=10,
    )
    response.raise_for_status()
    _admin_grant_ids.update(g["id"] for g in response.json())


@schemathesis.auth(refresh_interval=3)
class ManagementToken:
    """The bootstrap admin's token for the Management API audience."""

    def get(self, case, ctx):
        token = _token()
        _remember_admin_grants(token)
        return token

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def map_body(ctx, body):
    operation = getattr(ctx, "operation", None)
    if (
        operation is not None
        and operation.method.upper() == "PATCH"
        and operation.path.endswith("/tenants/settings")
        and isinstance(body, dict)
    ):
        quota = body.get("default_token_quota")
        clients = quota.get("clients") if isinstance(quota, dict) else None
        credentials = clients.get("client_credentials") if isinstance(clients, dict) else None
        if isinstance(credentials, dict):
            credentials["enforce"] = False
    if (
        operation is not None
        and operation.method.upper() == "POST"
        and operation.path.endswith("/client-grants")
        and isinstance(body, dict)
        and len(str(body.get("client_id", ""))) % 2 == 0
    ):
        body["audience"] = AUDIENCE
    return body


ORACLE = os.environ.get("CLAVIS_FUZZ_ORACLE", "clavis")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.method.upper() == "GET":
        # docs/auth0/oracle-deviations.json, "requests": a nested `fields` selection answers
        # objects without the properties their schema requires, which no document can check.
        # Clavis's served document is Auth0's since issue 19, so this holds for both oracles.
        query = case.query or {}
        fields = query.get("fields")
        if isinstance(fields, str) and "." in fields:
            query["fields"] = ",".join(f for f in fields.split(",") if "." not in f)
    params = case.path_parameters or {}
    if case.method.upper() == "GET":
        return
    if params.get("client_id") == CLIENT_ID:
        params["client_id"] = PROTECTED_ID
    # Auth0's document (api-fuzz --oracle auth0) names the client `id` in /clients/{id}.
    if case.path.startswith("/api/v2/clients/{id}") and params.get("id") == CLIENT_ID:
        params["id"] = PROTECTED_ID
    if case.path.startswith("/api/v2/client-grants/") and params.get("id") in _admin_grant_ids:
        params["id"] = PROTECTED_ID
