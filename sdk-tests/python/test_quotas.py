"""Token quotas through auth0-python v6: token_quota on clients and organizations
(mgmt.clients.*, mgmt.organizations.*), the tenant's default_token_quota
(mgmt.tenants.settings.*), and the 429 a spent quota answers (RateLimitError, with the
quota header among its headers).
"""

from __future__ import annotations

import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import RateLimitError

from conftest import uniq

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


def api(mgmt) -> str:
    identifier = f"https://{uniq('sdk-py-quota')}.clavis.test/"
    rs = mgmt.resource_servers.create(identifier=identifier, scopes=[])
    CREATED["apis"].append(rs.id)
    return identifier


def buckets(value: str) -> dict:
    out = {}
    for part in value.split(","):
        fields = dict(kv.split("=", 1) for kv in part.split(";"))
        out[fields["b"]] = (int(fields["q"]), int(fields["r"]), int(fields["t"]))
    return out


def test_a_client_quota_is_managed_and_refuses_when_spent(mgmt, env):
    identifier = api(mgmt)
    quota = {"client_credentials": {"per_hour": 1, "enforce": True}}
    c = mgmt.clients.create(
        name=uniq("sdk-py-quota"),
        app_type="non_interactive",
        grant_types=["client_credentials"],
        token_quota=quota,
    )
    CREATED["clients"].append(c.client_id)
    assert c.token_quota.model_dump(exclude_none=True) == quota
    assert mgmt.clients.get(c.client_id).token_quota.model_dump(exclude_none=True) == quota
    mgmt.client_grants.create(client_id=c.client_id, audience=identifier, scope=[])
    get_token = GetToken(env.domain, c.client_id, client_secret=c.client_secret)
    assert get_token.client_credentials(identifier)["access_token"]
    with pytest.raises(RateLimitError) as ei:
        get_token.client_credentials(identifier)
    err = ei.value
    assert err.error_code == "too_many_requests"
    assert err.message == "Client quota exceeded"
    q, r, t = buckets(err.headers["auth0-client-quota-limit"])["per_hour"]
    assert (q, r) == (1, 0)
    assert int(err.headers["retry-after"]) == t
    assert err.reset_at > 0


def test_an_organization_quota_and_the_tenant_default(mgmt, env):
    o = mgmt.organizations.create(
        name=uniq("sdk-py-quota"), token_quota={"client_credentials": {"per_day": 7}}
    )
    CREATED["orgs"].append(o.id)
    assert o.token_quota.client_credentials.per_day == 7
    o = mgmt.organizations.update(o.id, token_quota={"client_credentials": {"per_day": 8, "enforce": False}})
    assert o.token_quota.client_credentials.per_day == 8
    assert o.token_quota.client_credentials.enforce is False

    before = mgmt.tenants.settings.get()
    try:
        dtq = {"organizations": {"client_credentials": {"per_hour": 100000, "enforce": False}}}
        updated = mgmt.tenants.settings.update(default_token_quota=dtq)
        assert updated.default_token_quota.model_dump(exclude_none=True) == dtq
        got = mgmt.tenants.settings.get()
        assert got.default_token_quota.organizations.client_credentials.per_hour == 100000
    finally:
        mgmt.tenants.settings.update(
            default_token_quota=before.default_token_quota.model_dump(exclude_none=True)
            if before.default_token_quota
            else None
        )
