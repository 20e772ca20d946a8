from __future__ import annotations

import pytest

from conftest import MCP_URL, eventually, text_of, unique
from connectors_gateway import ConflictError, InvalidRequestError, NotFoundError


def test_a_tenants_mcp_server_add_get_list_use_delete(new_tenant) -> None:
    created, client = new_tenant("py-servers")
    name = unique("notes")
    accepted = client.mcp.add(name, {"type": "http", "url": MCP_URL}, "productivity")
    assert accepted["name"] == name
    assert accepted["status"] == "pending"
    assert accepted["namespace"] == f"tenant-{created['id']}"
    assert accepted["deploymentId"]

    ready = client.mcp.wait_until_ready(name, timeout=30, interval=0.1)
    assert ready["toolsDiscovered"] == 6
    assert ready["source"]["type"] == "http"
    assert ready["endpoint"] == MCP_URL
    assert [server["name"] for server in client.mcp.list()] == [name]
    with pytest.raises(ConflictError):
        client.mcp.add(name, {"type": "http", "url": MCP_URL}, "productivity")

    echo = client.tools.invoke(f"{name}.echo", {"text": "hello"})
    assert "hello" in text_of(echo["result"])

    assert client.mcp.delete(name)["status"] == "deleting"

    def gone() -> None:
        try:
            server = client.mcp.get(name)
        except NotFoundError:
            return
        raise AssertionError(f"still there: {server}")

    eventually("the server to be gone", gone)
    assert client.mcp.list() == []


def test_a_github_source_without_the_deployer_is_a_422(new_tenant) -> None:
    _, client = new_tenant("py-deployer")
    with pytest.raises(InvalidRequestError) as caught:
        client.mcp.add("gh", {"type": "github", "url": "https://github.com/acme/server"}, "x")
    assert caught.value.status == 422
    assert caught.value.code == "deployer_unavailable"
    assert caught.value.body["sourceType"] == "github"
