"""Lifecycle of clients, credentials, resource servers and client grants through
auth0-python v6 (`auth0.management.ManagementClient`) against Clavis.

The tests run in file order and share state in `S`; a failure early on makes
later steps fail too.
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
    ForbiddenError,
    ManagementClient,
    NotFoundError,
    ResourceServerScope,
)
from auth0.management.core.api_error import ApiError

from conftest import (
    RX_CLIENT_ID,
    RX_CRED_ID,
    RX_GRANT_ID,
    RX_RS_ID,
    RX_TS,
    assert_mgmt_error_body,
    decode_jwt,
    fixture_text,
    raw_json,
    rsa_key,
    uniq,
)

S: dict = {"name": uniq("sdk-py"), "identifier": f"https://{uniq('sdk-py-api')}.clavis.test/api", "key": rsa_key(), "creds": {}}


def _quiet(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception:
        pass


@pytest.fixture(scope="module", autouse=True)
def cleanup(mgmt):
    yield
    # Leaves a long-lived server clean when a step failed half-way.
    for key in ("grant_mgmt", "grant"):
        if key in S:
            _quiet(mgmt.client_grants.delete, S[key].id)
    if "client" in S:
        cid = S["client"].client_id
        _quiet(mgmt.clients.update, cid, client_authentication_methods=None, token_endpoint_auth_method="client_secret_post")
        for c in S["creds"].values():
            _quiet(mgmt.clients.credentials.delete, cid, c.id)
        _quiet(mgmt.clients.delete, cid)
    if "rs" in S:
        _quiet(mgmt.resource_servers.delete, S["rs"].id)


def cid() -> str:
    return S["client"].client_id


# ------------------------------------------------------------------ clients
def test_create_client(mgmt):
    raw = mgmt.clients.with_raw_response.create(
        name=S["name"],
        description="created by sdk-tests/python",
        app_type="non_interactive",
        grant_types=["client_credentials"],
        token_endpoint_auth_method="client_secret_post",
    )
    assert raw.status_code == 201
    c = raw.data
    assert RX_CLIENT_ID.match(c.client_id)
    assert c.name == S["name"]
    assert c.description == "created by sdk-tests/python"
    assert c.app_type == "non_interactive"
    assert c.grant_types == ["client_credentials"]
    assert c.token_endpoint_auth_method == "client_secret_post"
    assert isinstance(c.client_secret, str) and len(c.client_secret) >= 32
    assert raw_json(raw).get("client_authentication_methods") is None
    S["client"] = c
    S["secret"] = c.client_secret


def test_list_clients_default_paging(mgmt):
    pager = mgmt.clients.list()
    # include_totals=true is the SDK default: the envelope is parsed into this model.
    env_ = pager.response
    assert env_.clients is not None, "expected the include_totals envelope with `clients`"
    assert env_.total is not None and env_.total >= 2
    assert env_.start == 0
    assert env_.limit == 50
    all_clients = list(pager)
    found = [c for c in all_clients if c.client_id == cid()]
    assert len(found) == 1
    assert found[0].name == S["name"]


def test_get_client(mgmt):
    c = mgmt.clients.get(cid())
    assert c.client_id == cid()
    assert c.name == S["name"]
    assert c.client_secret == S["secret"]


def test_update_client(mgmt):
    S["name"] += "-renamed"
    c = mgmt.clients.update(cid(), name=S["name"], description="renamed by sdk-tests/python")
    assert c.name == S["name"]
    assert c.description == "renamed by sdk-tests/python"
    assert c.grant_types == ["client_credentials"]
    assert mgmt.clients.get(cid()).name == S["name"]


# --------------------------------------------------------- resource servers
def test_create_resource_server(mgmt):
    rs = mgmt.resource_servers.create(
        identifier=S["identifier"],
        name=f"{S['name']} api",
        scopes=[
            ResourceServerScope(value="read:things", description="Read things"),
            ResourceServerScope(value="write:things", description="Write things"),
        ],
        signing_alg="RS256",
        token_lifetime=3600,
    )
    assert RX_RS_ID.match(rs.id)
    assert rs.identifier == S["identifier"]
    assert [(x.value, x.description) for x in rs.scopes] == [
        ("read:things", "Read things"),
        ("write:things", "Write things"),
    ]
    assert rs.signing_alg == "RS256"
    assert rs.token_lifetime == 3600
    S["rs"] = rs


def test_list_resource_servers(mgmt, env):
    pager = mgmt.resource_servers.list()
    assert pager.response.resource_servers is not None
    assert pager.response.total is not None
    all_rs = list(pager)
    assert any(r.id == S["rs"].id for r in all_rs)
    system = [r for r in all_rs if r.identifier == env.mgmt_audience]
    assert len(system) == 1 and system[0].is_system is True


def test_get_resource_server(mgmt):
    rs = mgmt.resource_servers.get(S["rs"].id)
    assert rs.id == S["rs"].id
    assert rs.identifier == S["identifier"]


def test_update_resource_server(mgmt):
    rs = mgmt.resource_servers.update(S["rs"].id, name=f"{S['name']} api v2", token_lifetime=7200)
    assert rs.name == f"{S['name']} api v2"
    assert rs.token_lifetime == 7200
    assert rs.identifier == S["identifier"]
    assert len(rs.scopes) == 2


# ------------------------------------------------------------ client grants
def test_create_client_grant(mgmt):
    g = mgmt.client_grants.create(client_id=cid(), audience=S["identifier"], scope=["read:things"])
    assert RX_GRANT_ID.match(g.id)
    assert g.client_id == cid()
    assert g.audience == S["identifier"]
    assert g.scope == ["read:things"]
    S["grant"] = g


def test_list_client_grants(mgmt):
    pager = mgmt.client_grants.list()
    assert pager.response.client_grants is not None
    assert any(g.id == S["grant"].id for g in pager)
    mine = list(mgmt.client_grants.list(client_id=cid()))
    assert [g.id for g in mine] == [S["grant"].id]


def test_update_client_grant(mgmt):
    g = mgmt.client_grants.update(S["grant"].id, scope=["read:things", "write:things"])
    assert g.id == S["grant"].id
    assert g.scope == ["read:things", "write:things"]


def test_grant_management_api_read_clients(mgmt, env):
    g = mgmt.client_grants.create(client_id=cid(), audience=env.mgmt_audience, scope=["read:clients"])
    assert RX_GRANT_ID.match(g.id)
    S["grant_mgmt"] = g


def test_token_for_new_client(env):
    t = GetToken(env.domain, cid(), client_secret=S["secret"]).client_credentials(S["identifier"])
    assert t["token_type"] == "Bearer"
    assert t["expires_in"] == 7200
    assert t["scope"] == "read:things write:things"
    _, claims = decode_jwt(t["access_token"])
    assert claims["aud"] == S["identifier"]
    assert claims["iss"] == env.issuer
    assert claims["sub"] == f"{cid()}@clients"
    assert claims["gty"] == "client-credentials"
    assert claims["exp"] - claims["iat"] == 7200


def test_forbidden_without_scope(env):
    limited = ManagementClient(domain=env.domain, client_id=cid(), client_secret=S["secret"])
    raw = limited.clients.with_raw_response.get(cid())
    assert raw.data.client_id == cid()
    assert "client_secret" not in raw_json(raw), "no client_secret without read:client_keys"
    with pytest.raises(ForbiddenError) as ei:
        limited.clients.credentials.list(cid())
    assert ei.value.status_code == 403
    assert isinstance(ei.value, ApiError)
    assert_mgmt_error_body(ei.value, 403, "insufficient_scope")


# -------------------------------------------------------------- credentials
def test_create_public_key_spki(mgmt):
    raw = mgmt.clients.credentials.with_raw_response.create(
        cid(), credential_type="public_key", name="sdk spki", pem=S["key"].spki, alg="RS256"
    )
    assert raw.status_code == 201
    body = raw_json(raw)
    assert list(body) == ["id", "credential_type", "kid", "alg", "name", "created_at", "updated_at"]
    assert RX_CRED_ID.match(body["id"])
    assert body["credential_type"] == "public_key"
    assert body["kid"] == S["key"].kid
    assert body["alg"] == "RS256"
    assert RX_TS.match(body["created_at"]) and RX_TS.match(body["updated_at"])
    c = raw.data
    assert c.id == body["id"]
    assert isinstance(c.created_at, dt.datetime)
    S["creds"]["spki"] = c
    S["spki_raw"] = body


def test_create_public_key_from_cert(mgmt, expected):
    c = mgmt.clients.credentials.create(
        cid(),
        credential_type="public_key",
        name="sdk cert",
        pem=fixture_text(expected["pubkey_cert"]["file"]),
        parse_expiry_from_cert=True,
    )
    assert RX_CRED_ID.match(c.id)
    assert c.kid == expected["pubkey_cert"]["kid"]
    assert c.expires_at == dt.datetime.fromisoformat(expected["pubkey_cert"]["expires_at"].replace("Z", "+00:00"))
    S["creds"]["pub_cert"] = c


def test_create_cert_subject_dn_string(mgmt):
    dn = "C=es\nO=Clavis\nCN=clavis-sdk-python"
    raw = mgmt.clients.credentials.with_raw_response.create(
        cid(), credential_type="cert_subject_dn", name="sdk dn", subject_dn=dn
    )
    body = raw_json(raw)
    assert list(body) == ["id", "credential_type", "name", "subject_dn", "created_at", "updated_at"]
    assert body["subject_dn"] == dn
    S["creds"]["dn"] = raw.data


def test_create_x509_cert(mgmt, expected):
    raw = mgmt.clients.credentials.with_raw_response.create(
        cid(), credential_type="x509_cert", name="sdk x509", pem=fixture_text(expected["x509_cert"]["file"])
    )
    body = raw_json(raw)
    assert list(body) == ["id", "credential_type", "name", "thumbprint_sha256", "created_at", "updated_at", "expires_at"]
    assert body["thumbprint_sha256"] == expected["x509_cert"]["thumbprint_sha256"]
    assert body["expires_at"] == expected["x509_cert"]["expires_at"]
    S["creds"]["x509"] = raw.data


def test_list_credentials(mgmt):
    lst = mgmt.clients.credentials.list(cid())
    assert [c.id for c in lst] == [S["creds"][k].id for k in ("spki", "pub_cert", "dn", "x509")]


def test_get_credential(mgmt):
    raw = mgmt.clients.credentials.with_raw_response.get(cid(), S["creds"]["spki"].id)
    assert raw_json(raw) == S["spki_raw"]


def test_update_credential_expires_at_then_null(mgmt):
    cred_id = S["creds"]["spki"].id
    raw = mgmt.clients.credentials.with_raw_response.update(
        cid(), cred_id, expires_at=dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    )
    assert raw.status_code == 200
    body = raw_json(raw)
    assert body["id"] == cred_id
    assert body["expires_at"] == "2031-02-03T04:05:06.000Z"
    assert body["created_at"] == S["spki_raw"]["created_at"]
    assert body["updated_at"] >= S["spki_raw"]["updated_at"]
    assert raw.data.expires_at == dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)

    raw = mgmt.clients.credentials.with_raw_response.update(cid(), cred_id, expires_at=None)
    body = raw_json(raw)
    assert "expires_at" not in body, "expires_at: null removes the key"
    assert body["created_at"] == S["spki_raw"]["created_at"]
    assert "expires_at" not in raw_json(mgmt.clients.credentials.with_raw_response.get(cid(), cred_id))


def test_update_credential_with_offset(mgmt):
    tz = dt.timezone(dt.timedelta(hours=2))
    raw = mgmt.clients.credentials.with_raw_response.update(
        cid(), S["creds"]["dn"].id, expires_at=dt.datetime(2032, 1, 1, 2, 0, 0, 123456, tzinfo=tz)
    )
    assert raw_json(raw)["expires_at"] == "2032-01-01T00:00:00.123Z"


def test_update_credential_without_body_is_400(mgmt):
    with pytest.raises(BadRequestError) as ei:
        mgmt.clients.credentials.update(cid(), S["creds"]["spki"].id)
    assert ei.value.status_code == 400
    assert_mgmt_error_body(ei.value, 400, "invalid_body")


def test_get_unknown_credential_is_404(mgmt):
    with pytest.raises(NotFoundError) as ei:
        mgmt.clients.credentials.get(cid(), "cred_1111111111111111111111")
    assert ei.value.status_code == 404
    assert_mgmt_error_body(ei.value, 404)
    assert ei.value.body["message"] == "The credential does not exist"


def test_create_with_garbage_pem_is_400(mgmt):
    with pytest.raises(BadRequestError) as ei:
        mgmt.clients.credentials.create(
            cid(),
            credential_type="public_key",
            name="garbage",
            pem="-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
        )
    assert ei.value.status_code == 400
    assert_mgmt_error_body(ei.value, 400, "invalid_body")


def test_replace_subject_dn_with_cert(mgmt, expected):
    mgmt.clients.credentials.delete(cid(), S["creds"].pop("dn").id)
    c = mgmt.clients.credentials.create(
        cid(), credential_type="cert_subject_dn", name="sdk dn pem", pem=fixture_text(expected["subject_cert"]["file"])
    )
    assert RX_CRED_ID.match(c.id)
    assert c.subject_dn == expected["subject_cert"]["subject_dn"]
    assert c.expires_at is None
    S["creds"]["dn_pem"] = c
    assert [x.id for x in mgmt.clients.credentials.list(cid())] == [
        S["creds"][k].id for k in ("spki", "pub_cert", "x509", "dn_pem")
    ]


# -------------------------------------------- attach / detach (private_key_jwt)
def test_attach_private_key_jwt(mgmt):
    raw = mgmt.clients.with_raw_response.update(
        cid(),
        client_authentication_methods=ClientAuthenticationMethod(
            private_key_jwt=ClientAuthenticationMethodPrivateKeyJwt(credentials=[CredentialId(id=S["creds"]["spki"].id)])
        ),
        token_endpoint_auth_method=None,
    )
    body = raw_json(raw)
    assert body["client_authentication_methods"] == {"private_key_jwt": {"credentials": [{"id": S["creds"]["spki"].id}]}}
    assert "client_secret" not in body
    assert "token_endpoint_auth_method" not in body
    assert "client_secret" not in raw_json(mgmt.clients.with_raw_response.get(cid()))


def test_delete_attached_credential_is_400(mgmt):
    with pytest.raises(BadRequestError) as ei:
        mgmt.clients.credentials.delete(cid(), S["creds"]["spki"].id)
    assert ei.value.status_code == 400
    assert "still associated" in ei.value.body["message"]


def test_token_with_client_assertion(env):
    t = GetToken(env.domain, cid(), client_assertion_signing_key=S["key"].pkcs8).client_credentials(S["identifier"])
    assert t["token_type"] == "Bearer"
    assert decode_jwt(t["access_token"])[1]["sub"] == f"{cid()}@clients"
    # The management token from an assertion, handed to ManagementClient(token=...).
    mt = GetToken(env.domain, cid(), client_assertion_signing_key=S["key"].pkcs8).client_credentials(env.mgmt_audience)
    via_token = ManagementClient(domain=env.domain, token=mt["access_token"])
    assert via_token.clients.get(cid()).client_id == cid()


def test_detach(mgmt):
    raw = mgmt.clients.with_raw_response.update(
        cid(), client_authentication_methods=None, token_endpoint_auth_method="client_secret_post"
    )
    body = raw_json(raw)
    assert body.get("client_authentication_methods") is None
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    assert body["client_secret"] == S["secret"]


def test_delete_credentials(mgmt):
    for key in list(S["creds"]):
        assert mgmt.clients.credentials.delete(cid(), S["creds"][key].id) is None
        del S["creds"][key]
    assert mgmt.clients.credentials.list(cid()) == []


# ------------------------------------------------------------------ rotation
def test_rotate_secret(mgmt, env):
    c = mgmt.clients.rotate_secret(cid())
    assert c.client_id == cid()
    assert isinstance(c.client_secret, str) and c.client_secret != S["secret"]
    old, S["secret"] = S["secret"], c.client_secret
    with pytest.raises(Auth0Error) as ei:
        GetToken(env.domain, cid(), client_secret=old).client_credentials(S["identifier"])
    assert ei.value.status_code == 401
    assert ei.value.error_code == "access_denied"
    t = GetToken(env.domain, cid(), client_secret=S["secret"]).client_credentials(S["identifier"])
    assert t["token_type"] == "Bearer"


# ------------------------------------------------------------------ teardown
def test_delete_client_grants(mgmt):
    for key in ("grant_mgmt", "grant"):
        gid = S.pop(key).id
        assert mgmt.client_grants.delete(gid) is None
        assert all(g.id != gid for g in mgmt.client_grants.list(client_id=cid()))


def test_delete_resource_server(mgmt):
    rs_id = S.pop("rs").id
    assert mgmt.resource_servers.delete(rs_id) is None
    with pytest.raises(NotFoundError):
        mgmt.resource_servers.get(rs_id)


def test_delete_client(mgmt):
    client_id = S.pop("client").client_id
    assert mgmt.clients.delete(client_id) is None
    with pytest.raises(NotFoundError) as ei:
        mgmt.clients.get(client_id)
    assert_mgmt_error_body(ei.value, 404, "inexistent_client")
