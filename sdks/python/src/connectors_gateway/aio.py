"""The asynchronous clients: :class:`AsyncConnectors` and :class:`AsyncAdminAPI`, the same calls
as :mod:`connectors_gateway.client`, awaited, over one ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
import builtins
from typing import Any, Self, TypeVar, Unpack

import httpx

from . import _calls as calls
from ._request import AsyncRun, ClientConfig, Request, auth_headers, build, result, retry_delay, to_error
from .errors import ApiConnectionError, ConnectorsError
from .types import (
    AuditEvent,
    AuditOptions,
    AuditPage,
    ClusterView,
    Credential,
    CredentialFields,
    Integration,
    IntegrationFields,
    Invocation,
    ListTenantsOptions,
    ListToolsOptions,
    NewTenantFields,
    RotatedKey,
    SelectOptions,
    Selection,
    Server,
    ServerAccepted,
    ServerSource,
    Tenant,
    TenantFields,
    TenantList,
    TenantMetrics,
    Tool,
    ToolList,
    UsageReport,
)

T = TypeVar("T")


class _AsyncTransport:
    """Sends calls over one ``httpx.AsyncClient``, retrying 429 / 503 after their ``Retry-After``."""

    def __init__(self, config: ClientConfig, http_client: httpx.AsyncClient | None) -> None:
        self._config = config
        self._http = http_client or httpx.AsyncClient(timeout=config.timeout)
        self._owns_http = http_client is None

    async def run(self, request: Request[T]) -> T:
        url = self._config.base_url.rstrip("/") + request.path
        attempt = 0
        while True:
            try:
                response = await self._http.request(request.method, url, headers=self._config.headers, **build(request))
            except httpx.HTTPError as failure:
                raise ApiConnectionError(f"{request.method} {url}: {failure}") from failure
            if response.is_success:
                return result(request, response)
            error = to_error(response)
            delay = retry_delay(self._config, error, attempt)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()


async def _pages(fetch: Callable[[str | None], Awaitable[Any]], items: str) -> AsyncIterator[Any]:
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page[items]:
            yield item
        cursor = page.get("nextCursor")
        if not cursor:
            return


class _AsyncClient:
    def __init__(self, transport: _AsyncTransport) -> None:
        self._transport = transport

    async def aclose(self) -> None:
        """Closes the HTTP connections (when the client created them)."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# ----- tenant API ----------------------------------------------------------------------------------


class AsyncTools:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def select(self, query: str, **options: Unpack[SelectOptions]) -> Selection:
        """Ranks the tenant's tools for a query into tiers that fit the token budget."""
        return await self._run(calls.tools_select(query, dict(options)))

    async def list(self, *, cursor: str | None = None, **options: Unpack[ListToolsOptions]) -> ToolList:
        """One page of the tools this tenant may use."""
        return await self._run(calls.tools_list(dict(options), cursor))

    def iterate(self, **options: Unpack[ListToolsOptions]) -> AsyncIterator[Tool]:
        """Every tool this tenant may use, following ``nextCursor``."""
        return _pages(lambda cursor: self._run(calls.tools_list(dict(options), cursor)), "tools")

    async def get(self, tool_id: str) -> Tool:
        """One tool with its ``inputSchema``."""
        return await self._run(calls.tools_get(tool_id))

    async def invoke(
        self, tool_id: str, parameters: dict[str, Any] | None = None, *, selection_id: str | None = None
    ) -> Invocation:
        """Calls a tool; a tool's own failure is a result with ``isError: True``, not an exception."""
        return await self._run(calls.tools_invoke(tool_id, parameters, selection_id))

    async def feedback(self, tool_ids: builtins.list[str], *, selection_id: str | None = None, query: str | None = None) -> None:
        """Tells the gateway which tools served a query."""
        await self._run(calls.tools_feedback(tool_ids, selection_id, query))


class AsyncMcpServers:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def add(
        self, name: str, source: ServerSource, category: str, *, description: str | None = None
    ) -> ServerAccepted:
        """Registers one of the tenant's own MCP servers; its deployment goes on in the background."""
        return await self._run(calls.mcp_add(name, source, category, description))

    async def list(self) -> builtins.list[Server]:
        return await self._run(calls.mcp_list())

    async def get(self, name: str) -> Server:
        return await self._run(calls.mcp_get(name))

    async def delete(self, name: str) -> Server:
        """Starts removing a server (status ``deleting``); it is gone shortly after."""
        return await self._run(calls.mcp_delete(name))

    async def wait_until_ready(self, name: str, *, timeout: float = 60.0, interval: float = 0.5) -> Server:
        """Polls a server until it is ``ready``; raises when it ``failed`` or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            server = await self.get(name)
            if server["status"] == "ready":
                return server
            if server["status"] == "failed":
                raise ConnectorsError(f"MCP server {name} failed to deploy: {server.get('error', 'no reason given')}")
            if time.monotonic() >= deadline:
                raise ConnectorsError(f"MCP server {name} is still {server['status']} after {timeout} s")
            await asyncio.sleep(interval)


class AsyncTenantResource:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def get(self) -> Tenant:
        """The caller's tenant with this month's usage."""
        return await self._run(calls.tenant_get())


class AsyncConnectors(_AsyncClient):
    """The tenant API: ``AsyncConnectors(base_url=..., tenant_id=..., api_key=...)``.

    ``tenant_id`` may be left out: the gateway then serves the key's own tenant. ``max_retries``
    (default 2, 0 turns retrying off) bounds how often a 429 / 503 answer is retried after its
    ``Retry-After``; an answer asking to wait longer than ``max_retry_delay`` seconds is raised at
    once. ``tenant_id_header`` / ``api_key_header`` follow the gateway's configuration.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        tenant_id: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        max_retry_delay: float = 60.0,
        tenant_id_header: str = "X-Tenant-ID",
        api_key_header: str = "Authorization",
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        headers = auth_headers(api_key, api_key_header, tenant_id, tenant_id_header)
        config = ClientConfig(base_url, headers, timeout, max_retries, max_retry_delay)
        super().__init__(_AsyncTransport(config, http_client))
        run = self._transport.run
        self.tools = AsyncTools(run)
        self.mcp = AsyncMcpServers(run)
        self.tenant = AsyncTenantResource(run)


# ----- admin API -----------------------------------------------------------------------------------


class AsyncTenants:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def create(self, id: str, name: str, **fields: Unpack[NewTenantFields]) -> Tenant:  # noqa: A002 - the API's name
        """Creates a tenant; the answer's ``apiKey`` is shown this once."""
        return await self._run(calls.tenants_create(id, name, dict(fields)))

    async def list(self, *, cursor: str | None = None, **options: Unpack[ListTenantsOptions]) -> TenantList:
        return await self._run(calls.tenants_list(dict(options), cursor))

    def iterate(self, **options: Unpack[ListTenantsOptions]) -> AsyncIterator[Tenant]:
        """Every tenant, following ``nextCursor``."""
        return _pages(lambda cursor: self._run(calls.tenants_list(dict(options), cursor)), "tenants")

    async def get(self, tenant_id: str) -> Tenant:
        return await self._run(calls.tenants_get(tenant_id))

    async def update(self, tenant_id: str, **fields: Unpack[TenantFields]) -> Tenant:
        return await self._run(calls.tenants_update(tenant_id, dict(fields)))

    async def delete(self, tenant_id: str) -> None:
        """Deletes a tenant: its keys stop working at once; its audit history is kept."""
        await self._run(calls.tenants_delete(tenant_id))

    async def rotate_key(self, tenant_id: str, *, grace_seconds: int | None = None) -> RotatedKey:
        """Issues a new API key; the old one stops working at once, or after ``grace_seconds``."""
        return await self._run(calls.tenants_rotate_key(tenant_id, grace_seconds))


class AsyncOAuthCredentials:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def put(
        self, tenant_id: str, integration: str, access_token: str, **fields: Unpack[CredentialFields]
    ) -> Credential:
        """Stores a tenant's credential for an OAuth integration; tokens are never returned."""
        return await self._run(calls.oauth_put(tenant_id, integration, access_token, dict(fields)))

    async def list(self, tenant_id: str) -> builtins.list[Credential]:
        return await self._run(calls.oauth_list(tenant_id))

    async def delete(self, tenant_id: str, integration: str) -> None:
        await self._run(calls.oauth_delete(tenant_id, integration))


class AsyncUsage:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def get(self, tenant_id: str, *, month: str | None = None) -> UsageReport:
        """The usage report of a month (``YYYY-MM``; default: the current month)."""
        return await self._run(calls.usage_get(tenant_id, month))


class AsyncMetrics:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def get(
        self, tenant_id: str, *, start_date: str | None = None, end_date: str | None = None
    ) -> TenantMetrics:
        """A tenant's counts over a date range (``YYYY-MM-DD``, inclusive)."""
        return await self._run(calls.metrics_get(tenant_id, start_date, end_date))


class AsyncAudit:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def list(self, tenant_id: str, *, cursor: str | None = None, **options: Unpack[AuditOptions]) -> AuditPage:
        """One page of a tenant's audit log: ``{events, nextCursor}``."""
        return await self._run(calls.audit_list(tenant_id, dict(options), cursor))

    def iterate(self, tenant_id: str, **options: Unpack[AuditOptions]) -> AsyncIterator[AuditEvent]:
        """Every matching event, following ``nextCursor``."""
        return _pages(lambda cursor: self._run(calls.audit_list(tenant_id, dict(options), cursor)), "events")


class AsyncIntegrations:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def create(self, name: str, url: str, **fields: Unpack[IntegrationFields]) -> Integration:
        """Registers a shared MCP server offered to every tenant; its tools are discovered at once."""
        return await self._run(calls.integrations_create(name, url, dict(fields)))

    async def list(self) -> builtins.list[Integration]:
        return await self._run(calls.integrations_list())

    async def refresh(self, name: str) -> Integration:
        """Discovers the integration's tools again."""
        return await self._run(calls.integrations_refresh(name))

    async def delete(self, name: str) -> None:
        await self._run(calls.integrations_delete(name))


class AsyncCluster:
    def __init__(self, run: AsyncRun) -> None:
        self._run = run

    async def get(self) -> ClusterView:
        """The nodes of the cluster and the shards the answering node owns."""
        return await self._run(calls.cluster_get())


class AsyncAdminAPI(_AsyncClient):
    """The admin API: ``AsyncAdminAPI(base_url=..., api_key=<admin key>)``; options as :class:`AsyncConnectors`."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 30.0,
        max_retries: int = 2,
        max_retry_delay: float = 60.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        config = ClientConfig(base_url, {"Authorization": f"Bearer {api_key}"}, timeout, max_retries, max_retry_delay)
        super().__init__(_AsyncTransport(config, http_client))
        run = self._transport.run
        self.tenants = AsyncTenants(run)
        self.oauth = AsyncOAuthCredentials(run)
        self.usage = AsyncUsage(run)
        self.metrics = AsyncMetrics(run)
        self.audit = AsyncAudit(run)
        self.integrations = AsyncIntegrations(run)
        self.cluster = AsyncCluster(run)
