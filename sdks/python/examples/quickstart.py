"""Quickstart: an operator creates a tenant and offers it an MCP server; the tenant selects the
right tool for a question and calls it.

    CONNECTORS_BASE_URL=http://localhost:8080 CONNECTORS_ADMIN_KEY=... \\
    CONNECTORS_MCP_URL=http://127.0.0.1:8931/mcp python examples/quickstart.py

``CONNECTORS_MCP_URL`` is any MCP server speaking streamable HTTP, e.g. the repository's example
server (``cargo run -p mcp-example-server -- --http 127.0.0.1:8931``).
"""

from __future__ import annotations

import os
import secrets
import sys

from connectors_gateway import AdminAPI, ApiError, Connectors


def main() -> int:
    base_url = os.environ.get("CONNECTORS_BASE_URL", "http://localhost:8080")
    admin_key = os.environ.get("CONNECTORS_ADMIN_KEY")
    mcp_url = os.environ.get("CONNECTORS_MCP_URL")
    if not admin_key or not mcp_url:
        print("set CONNECTORS_ADMIN_KEY and CONNECTORS_MCP_URL (and CONNECTORS_BASE_URL)", file=sys.stderr)
        return 2
    suffix = secrets.token_hex(3)

    with AdminAPI(base_url=base_url, api_key=admin_key) as admin:
        # The operator's side: a shared integration and a tenant with its API key.
        integration = admin.integrations.create(f"calc-{suffix}", mcp_url, category=f"calc-{suffix}")
        print(f"integration {integration['name']}: {integration['toolsDiscovered']} tools")
        tenant = admin.tenants.create(f"quickstart-{suffix}", "Quickstart Inc.", plan="pro")
        print(f"tenant {tenant['id']} created")
        try:
            # The tenant's side.
            with Connectors(base_url=base_url, tenant_id=tenant["id"], api_key=tenant["apiKey"]) as connectors:
                selection = connectors.tools.select("add two numbers", allowed_categories=[integration["category"]])
                best = selection["tools"]["tier1"][0]
                print(f"selected {best['id']} (score {best['score']:.3f})")
                answer = connectors.tools.invoke(
                    best["id"], {"a": 20, "b": 22}, selection_id=selection["selectionId"]
                )
                text = "".join(part.get("text", "") for part in answer["result"]["content"])
                print(f"{best['id']}(20, 22) = {text}")
                try:
                    connectors.tools.get(f"{integration['name']}.missing")
                except ApiError as error:
                    print(f"typed error: {error.status} {error.code} (request {error.request_id})")
        finally:
            admin.tenants.delete(tenant["id"])
            admin.integrations.delete(integration["name"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
