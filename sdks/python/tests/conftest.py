"""What the suite runs against: a real gateway (``CONNECTORS_BASE_URL``, admin key
``CONNECTORS_ADMIN_KEY``) and a real MCP server it may call (``CONNECTORS_MCP_URL``, streamable
HTTP), all named by environment variables. The repository's ``tests/sdks.rs`` starts both and
runs this suite."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, TypeVar

import pytest

from connectors_gateway import AdminAPI, Connectors

T = TypeVar("T")


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: the suite runs against a real gateway (see README.md)")
    return value


BASE_URL = _required("CONNECTORS_BASE_URL")
ADMIN_KEY = _required("CONNECTORS_ADMIN_KEY")
MCP_URL = _required("CONNECTORS_MCP_URL")


def unique(prefix: str) -> str:
    """A name no other run of the suite uses, so it can run again against the same gateway."""
    return f"{prefix}-{secrets.token_hex(4)}"


def eventually(what: str, check: Callable[[], T], timeout: float = 15.0) -> T:
    """Retries ``check`` every 0.1 s until it returns without raising, for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except Exception as error:  # noqa: BLE001 - the last one is reported
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out waiting for {what}: {error}") from error
        time.sleep(0.1)


def ensure_minute_room(seconds: float) -> None:
    """Rate windows are UTC minutes: waits for the next minute when this one has under ``seconds`` left."""
    now = datetime.now(timezone.utc)
    left = 60 - (now.second + now.microsecond / 1e6)
    if left < seconds:
        time.sleep(left + 0.15)


def text_of(result: dict[str, Any]) -> str:
    """The text of an MCP ``CallToolResult``."""
    return "".join(part.get("text", "") for part in result["content"] if part.get("type") == "text")


@pytest.fixture
def admin() -> Iterator[AdminAPI]:
    with AdminAPI(base_url=BASE_URL, api_key=ADMIN_KEY) as client:
        yield client


@pytest.fixture
def new_tenant(admin: AdminAPI) -> Callable[..., tuple[dict[str, Any], Connectors]]:
    """Creates a fresh ``pro`` tenant; returns it (with its ``apiKey``) and a client for it."""
    clients: list[Connectors] = []

    def create(prefix: str, **fields: Any) -> tuple[dict[str, Any], Connectors]:
        tenant = admin.tenants.create(unique(prefix), f"SDK {prefix}", plan="pro", **fields)
        client = Connectors(base_url=BASE_URL, tenant_id=tenant["id"], api_key=tenant["apiKey"])
        clients.append(client)
        return dict(tenant), client

    yield create
    for client in clients:
        client.close()
