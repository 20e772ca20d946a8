"""Drives the gateway's MCP endpoint with the official MCP Python SDK (`mcp`, 2.x).

Run by tests/mcp_server_sdks.rs: `python python_client.py <scenario> <url> <tenant> <key>`.
Prints one JSON object per line for the test to read, and waits for a line on stdin where the
test has something to do first (change the tenant's tools, restart a node).

Scenarios:
  session    the initialize handshake (2025-11-25), list, call, then two
             notifications/tools/list_changed on the session's GET stream, the second after
             the test restarted the node that served that stream (the SDK reconnects it with
             Last-Event-ID), then list and call again.
  stateless  the 2026-07-28 revision: server/discover, list and call without a session.
"""

import json
import sys

import anyio
import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def text_of(result):
    return "".join(getattr(block, "text", "") for block in result.content)


async def wait_for_test():
    line = await anyio.to_thread.run_sync(sys.stdin.readline)
    if not line:
        raise SystemExit("the test went away")


async def list_and_call(client, a, b):
    tools = await client.list_tools(cache_mode="bypass")
    emit("tools", names=[tool.name for tool in tools.tools])
    result = await client.call_tool("example.add", {"a": a, "b": b})
    emit("called", text=text_of(result), isError=bool(result.is_error))


async def session(url, http):
    changes = anyio.Event()
    seen = []

    async def on_message(message):
        method = getattr(message, "method", None) or getattr(getattr(message, "root", None), "method", None)
        if method == "notifications/tools/list_changed":
            seen.append(method)
            changes.set()

    transport = streamable_http_client(url, http_client=http)
    async with Client(transport, mode="legacy", message_handler=on_message) as client:
        emit("initialized", protocolVersion=client.session.protocol_version)
        await list_and_call(client, 2, 3)
        for round in (1, 2):
            emit("waiting", round=round)
            await wait_for_test()
            with anyio.fail_after(60):
                while len(seen) < round:
                    changes = anyio.Event()
                    await changes.wait()
            emit("list_changed", count=len(seen))
        await list_and_call(client, 20, 22)


async def stateless(url, http):
    transport = streamable_http_client(url, http_client=http)
    async with Client(transport, mode="2026-07-28") as client:
        emit("adopted", protocolVersion=client.session.protocol_version)
        await list_and_call(client, 1, 2)


async def main():
    scenario, url, tenant, key = sys.argv[1:5]
    headers = {"X-Tenant-ID": tenant, "Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        await {"session": session, "stateless": stateless}[scenario](url, http)
    emit("done")


anyio.run(main)
