"""POST /oauth/token through auth0-python v6 (`auth0.authentication.GetToken`)."""

from __future__ import annotations

import httpx
import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error
from auth0.management import ManagementClient

from conftest import decode_jwt


def test_client_credentials_returns_bearer_jwt(env):
    t = GetToken(env.domain, env.client_id, client_secret=env.client_secret).client_credentials(env.mgmt_audience)
    assert t["token_type"] == "Bearer"
    assert isinstance(t["expires_in"], int) and t["expires_in"] > 0
    assert "update:client_credentials" in t["scope"].split(" ")
    header, claims = decode_jwt(t["access_token"])
    assert header["typ"] == "JWT"
    assert isinstance(header.get("kid"), str)
    assert claims["iss"] == env.issuer
    assert claims["aud"] == env.mgmt_audience
    assert claims["sub"] == f"{env.client_id}@clients"
    assert claims["azp"] == env.client_id
    assert claims["gty"] == "client-credentials"
    assert claims["scope"] == t["scope"]
    assert claims["exp"] - claims["iat"] == t["expires_in"]


def test_wrong_secret_is_401_access_denied(env):
    with pytest.raises(Auth0Error) as ei:
        GetToken(env.domain, env.client_id, client_secret="wrong-secret").client_credentials(env.mgmt_audience)
    assert ei.value.status_code == 401
    assert ei.value.error_code == "access_denied"


def test_unknown_audience_is_403_access_denied(env):
    with pytest.raises(Auth0Error) as ei:
        GetToken(env.domain, env.client_id, client_secret=env.client_secret).client_credentials(
            "https://no-such-api.clavis.test/"
        )
    assert ei.value.status_code == 403
    assert ei.value.error_code == "access_denied"


def test_management_client_token_failure_is_httpx_error(env):
    # auth0-python's ManagementClient fetches its token with plain httpx and
    # raise_for_status(): a refused token surfaces as httpx.HTTPStatusError.
    bad = ManagementClient(domain=env.domain, client_id=env.client_id, client_secret="wrong-secret")
    with pytest.raises(httpx.HTTPStatusError) as ei:
        bad.clients.get(env.client_id)
    assert ei.value.response.status_code == 401
    assert ei.value.response.json()["error"] == "access_denied"
