"""Organizations for machine-to-machine access through auth0-python v6: organizations and
their client grants (mgmt.organizations.*, mgmt.client_grants.organizations), and tokens for
an organization (GetToken.client_credentials(organization=...)) carrying org_id.
"""

from __future__ import annotations

import re

import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error
from auth0.management import ConflictError, NotFoundError

from conftest import assert_mgmt_error_body, decode_jwt, uniq

CREATED: dict = {"apis": [], "clients": [], "orgs": []}


@pytest.fixture(scope="module", autouse=True)
def cleanup(mgmt):
    yield
    for org_id in CREATED["orgs"]:
        try:
            mgmt.organizations.delete(org_id)
        except Exception:
            pass
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


def org(mgmt, name):
    o = mgmt.organizations.create(name=name, display_name="SDK org")
    CREATED["orgs"].append(o.id)
    return o


def test_organization_lifecycle(mgmt):
    name = uniq("sdk-py-org")
    o = org(mgmt, name)
    assert re.fullmatch(r"org_[A-Za-z0-9]{16}", o.id)
    assert mgmt.organizations.get(o.id).name == name
    assert mgmt.organizations.get_by_name(name).id == o.id
    assert any(x.id == o.id for x in mgmt.organizations.list(take=1))
    with pytest.raises(ConflictError) as ei:
        mgmt.organizations.create(name=name)
    assert_mgmt_error_body(ei.value, 409)
    updated = mgmt.organizations.update(o.id, display_name="Renamed", metadata={"tier": "gold"})
    assert updated.display_name == "Renamed"
    mgmt.organizations.delete(o.id)
    with pytest.raises(NotFoundError) as ei:
        mgmt.organizations.get(o.id)
    assert_mgmt_error_body(ei.value, 404, "inexistent_organization")


def test_client_grants_of_an_organization_and_tokens_for_it(mgmt, env):
    identifier = f"https://{uniq('sdk-py-org-api')}.clavis.test/"
    rs = mgmt.resource_servers.create(identifier=identifier, scopes=[{"value": "read:things"}])
    CREATED["apis"].append(rs.id)
    c = mgmt.clients.create(name=uniq("sdk-py-org"), app_type="non_interactive", grant_types=["client_credentials"])
    CREATED["clients"].append(c.client_id)
    grant = mgmt.client_grants.create(
        client_id=c.client_id, audience=identifier, scope=["read:things"], organization_usage="allow"
    )
    acme = org(mgmt, uniq("acme"))
    get_token = GetToken(env.domain, c.client_id, client_secret=c.client_secret)

    # allow: without an organization, a token without org_id; not yet associated: refused.
    plain = get_token.client_credentials(identifier)
    assert "org_id" not in decode_jwt(plain["access_token"])[1]
    with pytest.raises(Auth0Error) as ei:
        get_token.client_credentials(identifier, organization=acme.id)
    assert ei.value.status_code == 403 and ei.value.error_code == "access_denied"

    associated = mgmt.organizations.client_grants.create(acme.id, grant_id=grant.id)
    assert associated.id == grant.id
    assert [g.id for g in mgmt.organizations.client_grants.list(acme.id)] == [grant.id]
    assert [o.id for o in mgmt.client_grants.organizations.list(grant.id)] == [acme.id]

    token = get_token.client_credentials(identifier, organization=acme.id)
    claims = decode_jwt(token["access_token"])[1]
    assert claims["org_id"] == acme.id
    assert "org_name" not in claims

    mgmt.organizations.client_grants.delete(acme.id, grant.id)
    assert list(mgmt.organizations.client_grants.list(acme.id)) == []
    with pytest.raises(Auth0Error) as ei:
        get_token.client_credentials(identifier, organization=acme.id)
    assert ei.value.status_code == 403
