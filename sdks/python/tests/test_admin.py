from __future__ import annotations

import pytest

from conftest import BASE_URL, unique
from connectors_gateway import AdminAPI, AuthenticationError, Connectors, NotFoundError


def test_tenants_create_get_list_update_rotate_delete(admin: AdminAPI, new_tenant) -> None:
    created, client = new_tenant("py-admin", email="ops@example.com")
    assert len(created["apiKey"]) >= 16
    assert created["status"] == "active"
    assert created["plan"] == "pro"
    assert created["email"] == "ops@example.com"

    fetched = admin.tenants.get(created["id"])
    assert fetched["name"] == created["name"]
    assert fetched["usage"]["tenantId"] == created["id"]
    assert created["id"] in [tenant["id"] for tenant in admin.tenants.iterate(plan="pro")]
    page = admin.tenants.list(limit=1)
    assert len(page["tenants"]) == 1 and page["total"] >= 1

    updated = admin.tenants.update(created["id"], name="Renamed", limits={"requestsPerMinute": 500})
    assert updated["name"] == "Renamed"
    assert updated["limits"]["requestsPerMinute"] == 500
    assert updated["limits"]["requestsPerHour"] == 50_000, "other limits keep their values"
    assert client.tenant.get()["name"] == "Renamed"

    rotated_key = admin.tenants.rotate_key(created["id"])["apiKey"]
    assert rotated_key != created["apiKey"]
    with pytest.raises(AuthenticationError) as old_key:
        client.tenant.get()
    assert old_key.value.status == 401 and old_key.value.code == "unauthorized"
    with Connectors(base_url=BASE_URL, tenant_id=created["id"], api_key=rotated_key) as rotated:
        assert rotated.tenant.get()["id"] == created["id"]
        admin.tenants.delete(created["id"])
        with pytest.raises(NotFoundError):
            admin.tenants.get(created["id"])
        with pytest.raises(AuthenticationError):
            rotated.tenant.get()


def test_oauth_credentials_put_list_delete_and_secrets_never_come_back(admin: AdminAPI, new_tenant) -> None:
    created, _ = new_tenant("py-oauth")
    integration = unique("vault")
    stored = admin.oauth.put(
        created["id"],
        integration,
        "access-secret-1",
        refresh_token="refresh-secret-1",
        expires_at="2099-01-01T00:00:00Z",
        scopes=["repo"],
    )
    assert stored["integration"] == integration
    assert stored["scopes"] == ["repo"]
    listed = admin.oauth.list(created["id"])
    assert [credential["integration"] for credential in listed] == [integration]
    assert "secret-1" not in repr(listed)
    admin.oauth.delete(created["id"], integration)
    assert admin.oauth.list(created["id"]) == []
    with pytest.raises(NotFoundError):
        admin.oauth.delete(created["id"], integration)


def test_cluster_single_node_is_up(admin: AdminAPI) -> None:
    cluster = admin.cluster.get()
    assert [node["status"] for node in cluster["nodes"]] == ["up"]
    assert cluster["shards"]["owned"] == cluster["shards"]["total"]


def test_a_wrong_admin_key_is_an_authentication_error() -> None:
    with AdminAPI(base_url=BASE_URL, api_key="not-the-admin-key") as wrong, pytest.raises(AuthenticationError) as caught:
        wrong.tenants.list()
    assert caught.value.code == "unauthorized"
    assert caught.value.request_id
