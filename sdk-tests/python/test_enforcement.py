"""What the settings of Auth0's resource model mean, through auth0-python v6 as a user of
Auth0 would drive them: signing algorithms (verified with PyJWT against the JWKS, and with the
API's signing_secret), token dialects, the client access policy, client and user grants side
by side, and a refused setting.
"""

from __future__ import annotations

import jwt
import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error
from auth0.management import BadRequestError, ConflictError

from conftest import assert_mgmt_error_body, decode_jwt, uniq

CREATED: dict = {"apis": [], "clients": []}


@pytest.fixture(scope="module", autouse=True)
def cleanup(mgmt):
    yield
    for client_id in CREATED["clients"]:
        try:
            mgmt.clients.delete(client_id)
        except Exception:
            pass
    for api_id in CREATED["apis"]:
        try:
            mgmt.resource_servers.delete(api_id)
        except Exception:
            pass


def api(mgmt, **settings):
    identifier = f"https://{uniq('sdk-py-enf')}.clavis.test/"
    rs = mgmt.resource_servers.create(
        identifier=identifier,
        scopes=[{"value": "read:things"}, {"value": "write:things"}],
        **settings,
    )
    CREATED["apis"].append(rs.id)
    return rs


def client(mgmt):
    c = mgmt.clients.create(name=uniq("sdk-py-enf"), app_type="non_interactive", grant_types=["client_credentials"])
    CREATED["clients"].append(c.client_id)
    return c


def token(env, c, audience):
    return GetToken(env.domain, c.client_id, client_secret=c.client_secret).client_credentials(audience)


@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS256"])
def test_rsa_algorithms_verify_with_pyjwt_against_the_jwks(mgmt, env, alg):
    rs = api(mgmt, signing_alg=alg)
    c = client(mgmt)
    mgmt.client_grants.create(client_id=c.client_id, audience=rs.identifier, scope=["read:things"])
    access_token = token(env, c, rs.identifier)["access_token"]
    keys = jwt.PyJWKClient(f"{env.issuer}.well-known/jwks.json", cache_keys=False, cache_jwk_set=False)
    key = keys.get_signing_key_from_jwt(access_token)
    claims = jwt.decode(access_token, key.key, algorithms=[alg], audience=rs.identifier, issuer=env.issuer)
    assert claims["sub"] == f"{c.client_id}@clients"
    assert jwt.get_unverified_header(access_token)["alg"] == alg


def test_hs256_verifies_with_the_signing_secret(mgmt, env):
    secret = f"py-secret-{uniq('hs')}-0123456789"
    rs = api(mgmt, signing_alg="HS256", signing_secret=secret)
    assert rs.signing_secret == secret
    c = client(mgmt)
    mgmt.client_grants.create(client_id=c.client_id, audience=rs.identifier, scope=[])
    access_token = token(env, c, rs.identifier)["access_token"]
    claims = jwt.decode(access_token, secret, algorithms=["HS256"], audience=rs.identifier, issuer=env.issuer)
    assert claims["azp"] == c.client_id
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(access_token, secret + "x", algorithms=["HS256"], audience=rs.identifier)


def test_rfc9068_dialect_with_permissions(mgmt, env):
    rs = api(mgmt, token_dialect="rfc9068_profile_authz", enforce_policies=True)
    c = client(mgmt)
    mgmt.client_grants.create(client_id=c.client_id, audience=rs.identifier, scope=["write:things"])
    header, claims = decode_jwt(token(env, c, rs.identifier)["access_token"])
    assert header["typ"] == "at+jwt"
    assert claims["client_id"] == c.client_id
    assert claims["permissions"] == ["write:things"]
    assert "gty" not in claims and "azp" not in claims


def test_deny_all_refuses_tokens(mgmt, env):
    rs = api(mgmt, subject_type_authorization={"client": {"policy": "deny_all"}})
    c = client(mgmt)
    mgmt.client_grants.create(client_id=c.client_id, audience=rs.identifier, scope=[])
    with pytest.raises(Auth0Error) as ei:
        token(env, c, rs.identifier)
    assert ei.value.status_code == 403
    assert ei.value.error_code == "access_denied"


def test_user_and_client_grants_side_by_side(mgmt, env):
    rs = api(mgmt)
    c = client(mgmt)
    user = mgmt.client_grants.create(
        client_id=c.client_id, audience=rs.identifier, scope=["write:things"], subject_type="user"
    )
    with pytest.raises(Auth0Error) as ei:
        token(env, c, rs.identifier)
    assert ei.value.status_code == 403
    mgmt.client_grants.create(client_id=c.client_id, audience=rs.identifier, scope=["read:things"])
    assert token(env, c, rs.identifier)["scope"] == "read:things"
    with pytest.raises(ConflictError):
        mgmt.client_grants.create(client_id=c.client_id, audience=rs.identifier, scope=[], subject_type="user")
    users = list(mgmt.client_grants.list(audience=rs.identifier, subject_type="user"))
    assert [g.id for g in users] == [user.id]


def test_a_refused_setting_is_a_400_naming_it(mgmt):
    with pytest.raises(BadRequestError) as ei:
        mgmt.clients.create(name=uniq("sdk-py-enf"), compliance_level="fapi1_adv_pkj_par")
    assert_mgmt_error_body(ei.value, 400, "invalid_body")
    assert "compliance_level" in ei.value.body["message"]
