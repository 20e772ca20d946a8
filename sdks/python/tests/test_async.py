"""The async clients against the gateway: the same calls, awaited."""

from __future__ import annotations

import asyncio

import pytest

from conftest import ADMIN_KEY, BASE_URL, MCP_URL, text_of, unique
from connectors_gateway import AsyncAdminAPI, AsyncConnectors, NotFoundError, RateLimitError


def test_async_clients_create_select_invoke_and_typed_errors() -> None:
    async def scenario() -> None:
        async with AsyncAdminAPI(base_url=BASE_URL, api_key=ADMIN_KEY) as admin:
            name = unique("pyasync")
            category = unique("py-async")
            await admin.integrations.create(name, MCP_URL, category=category)
            tenant = await admin.tenants.create(unique("py-async"), "Async", plan="pro")
            try:
                async with AsyncConnectors(base_url=BASE_URL, tenant_id=tenant["id"], api_key=tenant["apiKey"]) as client:
                    assert (await client.tenant.get())["id"] == tenant["id"]
                    selection = await client.tools.select("echo some text back", allowed_categories=[category])
                    assert selection["tools"]["tier1"][0]["id"] == f"{name}.echo"
                    ids = [tool["id"] async for tool in client.tools.iterate(category=category, limit=5)]
                    assert len(ids) == 6
                    echoed = await client.tools.invoke(f"{name}.echo", {"text": "async hello"})
                    assert "async hello" in text_of(echoed["result"])
                    await client.tools.feedback([f"{name}.echo"], selection_id=selection["selectionId"])
                    with pytest.raises(NotFoundError):
                        await client.tools.get(f"{name}.nothing")
                    server = unique("srv")
                    await client.mcp.add(server, {"type": "http", "url": MCP_URL}, "async")
                    assert (await client.mcp.wait_until_ready(server, timeout=30, interval=0.1))["toolsDiscovered"] == 6
                    assert [s["name"] for s in await client.mcp.list()] == [server]
                    assert (await client.mcp.delete(server))["status"] == "deleting"

                    await admin.tenants.update(tenant["id"], limits={"requestsPerMinute": 1})
                    impatient = AsyncConnectors(
                        base_url=BASE_URL, tenant_id=tenant["id"], api_key=tenant["apiKey"], max_retries=0
                    )
                    async with impatient:
                        with pytest.raises(RateLimitError) as limited:
                            for _ in range(3):
                                await impatient.tenant.get()
                    assert limited.value.retry_after is not None and limited.value.retry_after >= 1
                assert (await admin.usage.get(tenant["id"]))["tenantId"] == tenant["id"]
                assert (await admin.audit.list(tenant["id"], limit=1))["events"]
                assert (await admin.cluster.get())["nodes"][0]["status"] == "up"
            finally:
                await admin.tenants.delete(tenant["id"])
                await admin.integrations.delete(name)

    asyncio.run(scenario())
