"""The audit trail through auth0-python v6: logs.list / logs.get read the events of the seed
scenario — a key, a token, PATCH expires_at into the past, a refused token request, PATCH back.
"""

from __future__ import annotations

import datetime as dt

import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error
from auth0.management import (
    BadRequestError,
    ClientAuthenticationMethod,
    ClientAuthenticationMethodPrivateKeyJwt,
    CredentialId,
    NotFoundError,
)

from conftest import rsa_key, uniq


def test_logs_list_and_get_read_the_seed_scenario(mgmt, env):
    key = rsa_key()
    client = mgmt.clients.create(name=uniq("logs-py"), app_type="non_interactive", grant_types=["client_credentials"])
    cid = client.client_id
    try:
        mgmt.client_grants.create(client_id=cid, audience=env.mgmt_audience, scope=["read:clients"])
        cred = mgmt.clients.credentials.create(cid, credential_type="public_key", pem=key.spki, alg="RS256")
        mgmt.clients.update(
            cid,
            client_authentication_methods=ClientAuthenticationMethod(
                private_key_jwt=ClientAuthenticationMethodPrivateKeyJwt(credentials=[CredentialId(id=cred.id)])
            ),
            token_endpoint_auth_method=None,
        )
        token = lambda: GetToken(env.domain, cid, client_assertion_signing_key=key.pkcs8).client_credentials(  # noqa: E731
            env.mgmt_audience
        )
        token()
        mgmt.clients.credentials.update(cid, cred.id, expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
        with pytest.raises(Auth0Error):
            token()
        mgmt.clients.credentials.update(cid, cred.id, expires_at=dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc))
        token()

        # What the SDK sends: page, per_page, include_totals=true, sort, search.
        pager = mgmt.logs.list(search=f"client_id:{cid}", per_page=100, sort="date:1")
        events = list(pager)
        assert [e.type for e in events] == ["seccft", "feccft", "seccft"]
        assert all(e.log_id.isdigit() for e in events)
        assert events[0].audience == env.mgmt_audience
        assert events[0].scope == "read:clients"
        assert events[0].client_name == client.name
        failed = events[1]
        assert "expired" in failed.description and cred.id in failed.description

        # Auth0's envelope with totals, as the SDK parsed it.
        resp = mgmt.logs.list(search=f"client_id:{cid}", per_page=100, sort="date:1").response
        assert (resp.start, resp.limit, resp.length, resp.total) == (0, 100, 3, 3)
        assert dict(resp.logs[1].details) == {
            "error": "invalid_client",
            "error_description": "Client authentication failed",
        }

        path = f"/api/v2/clients/{cid}/credentials/{cred.id}"
        writes = [
            e
            for e in mgmt.logs.list(search="type:sapi", per_page=100, sort="date:1")
            if e.details["request"]["path"] == path
        ]
        assert [w.details["request"]["body"]["expires_at"][:10] for w in writes] == ["2020-01-01", "2099-01-01"]
        assert all(w.client_id == env.client_id and w.details["response"]["statusCode"] == 200 for w in writes)

        one = mgmt.logs.get(failed.log_id)
        assert one.log_id == failed.log_id and one.type == "feccft"
        with pytest.raises(NotFoundError):
            mgmt.logs.get("90000000000099999999999")
        with pytest.raises(BadRequestError):
            mgmt.logs.list(search="type:(")
    finally:
        mgmt.clients.delete(cid)
