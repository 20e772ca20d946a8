"""The synchronous clients: :class:`Connectors` (tenant API) and :class:`AdminAPI`.

Generated from ``aio.py`` by ``tools/unasync.py``: edit that file, not this one."""


from __future__ import annotations

import time
from collections.abc import Iterator, Callable
import builtins
from typing import Any, Self, TypeVar, Unpack

import httpx

from . import _calls as calls
from ._request import Run, ClientConfig, Request, auth_headers, build, result, retry_delay, to_error
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


class _Transport:
    """Sends calls over one ``httpx.Client``, retrying 429 / 503 after their ``Retry-After``."""

    def __init__(self, config: ClientConfig, http_client: httpx.Client | None) -> None:
        self._config = config
        self._http = http_client or httpx.Client(timeout=config.timeout)
        self._owns_http = http_client is None

    def run(self, request: Request[T]) -> T:
        url = self._config.base_url.rstrip("/") + request.path
        attempt = 0
        while True:
            try:
                response = self._http.request(request.method, url, headers=self._config.headers, **build(request))
            except httpx.HTTPError as failure:
                raise ApiConnectionError(f"{request.method} {url}: {failure}") from failure
            if response.is_success:
                return result(request, response)
            error = to_error(response)
            delay = retry_delay(self._config, error, attempt)
            if delay is None:
                raise error
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        if self._owns_http:
            self._http.close()


def _pages(fetch: Callable[[str | None], Any], items: str) -> Iterator[Any]:
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        for item in page[items]:
            yield item
        cursor = page.get("nextCursor")
        if not cursor:
            return


class _Client:
    def __init__(self, transport: _Transport) -> None:
        self._transport = transport

    def close(self) -> None:
        """Closes the HTTP connections (when the client created them)."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ----- tenant API ----------------------------------------------------------------------------------


class Tools:
    def __init__(self, run: Run) -> None:
        self._run = run

    def select(self, query: str, **options: Unpack[SelectOptions]) -> Selection:
        """Ranks the tenant's tools for a query into tiers that fit the token budget."""
        return self._run(calls.tools_select(query, dict(options)))

    def list(self, *, cursor: str | None = None, **options: Unpack[ListToolsOptions]) -> ToolList:
        """One page of the tools this tenant may use."""
        return self._run(calls.tools_list(dict(options), cursor))

    def iterate(self, **options: Unpack[ListToolsOptions]) -> Iterator[Tool]:
        """Every tool this tenant may use, following ``nextCursor``."""
        return _pages(lambda cursor: self._run(calls.tools_list(dict(options), cursor)), "tools")

    def get(self, tool_id: str) -> Tool:
        """One tool with its ``inputSchema``."""
        return self._run(calls.tools_get(tool_id))

    def invoke(
        self, tool_id: str, parameters: dict[str, Any] | None = None, *, selection_id: str | None = None
    ) -> Invocation:
        """Calls a tool; a tool's own failure is a result with ``isError: True``, not an exception."""
        return self._run(calls.tools_invoke(tool_id, parameters, selection_id))

    def feedback(self, tool_ids: builtins.list[str], *, selection_id: str | None = None, query: str | None = None) -> None:
        """Tells the gateway which tools served a query."""
        self._run(calls.tools_feedback(tool_ids, selection_id, query))


class McpServers:
    def __init__(self, run: Run) -> None:
        self._run = run

    def add(
        self, name: str, source: ServerSource, category: str, *, description: str | None = None
    ) -> ServerAccepted:
        """Registers one of the tenant's own MCP servers; its deployment goes on in the background."""
        return self._run(calls.mcp_add(name, source, category, description))

    def list(self) -> builtins.list[Server]:
        return self._run(calls.mcp_list())

    def get(self, name: str) -> Server:
        return self._run(calls.mcp_get(name))

    def delete(self, name: str) -> Server:
        """Starts removing a server (status ``deleting``); it is gone shortly after."""
        return self._run(calls.mcp_delete(name))

    def wait_until_ready(self, name: str, *, timeout: float = 60.0, interval: float = 0.5) -> Server:
        """Polls a server until it is ``ready``; raises when it ``failed`` or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.get(name)
            if server["status"] == "ready":
                return server
            if server["status"] == "failed":
                raise ConnectorsError(f"MCP server {name} failed to deploy: {server.get('error', 'no reason given')}")
            if time.monotonic() >= deadline:
                raise ConnectorsError(f"MCP server {name} is still {server['status']} after {timeout} s")
            time.sleep(interval)


class TenantResource:
    def __init__(self, run: Run) -> None:
        self._run = run

    def get(self) -> Tenant:
        """The caller's tenant with this month's usage."""
        return self._run(calls.tenant_get())


class Connectors(_Client):
    """The tenant API: ``Connectors(base_url=..., tenant_id=..., api_key=...)``.

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
        http_client: httpx.Client | None = None,
    ) -> None:
        headers = auth_headers(api_key, api_key_header, tenant_id, tenant_id_header)
        config = ClientConfig(base_url, headers, timeout, max_retries, max_retry_delay)
        super().__init__(_Transport(config, http_client))
        run = self._transport.run
        self.tools = Tools(run)
        self.mcp = McpServers(run)
        self.tenant = TenantResource(run)


# ----- admin API -----------------------------------------------------------------------------------


class Tenants:
    def __init__(self, run: Run) -> None:
        self._run = run

    def create(self, id: str, name: str, **fields: Unpack[NewTenantFields]) -> Tenant:  # noqa: A002 - the API's name
        """Creates a tenant; the answer's ``apiKey`` is shown this once."""
        return self._run(calls.tenants_create(id, name, dict(fields)))

    def list(self, *, cursor: str | None = None, **options: Unpack[ListTenantsOptions]) -> TenantList:
        return self._run(calls.tenants_list(dict(options), cursor))

    def iterate(self, **options: Unpack[ListTenantsOptions]) -> Iterator[Tenant]:
        """Every tenant, following ``nextCursor``."""
        return _pages(lambda cursor: self._run(calls.tenants_list(dict(options), cursor)), "tenants")

    def get(self, tenant_id: str) -> Tenant:
        return self._run(calls.tenants_get(tenant_id))

    def update(self, tenant_id: str, **fields: Unpack[TenantFields]) -> Tenant:
        return self._run(calls.tenants_update(tenant_id, dict(fields)))

    def delete(self, tenant_id: str) -> None:
        """Deletes a tenant: its keys stop working at once; its audit history is kept."""
        self._run(calls.tenants_delete(tenant_id))

    def rotate_key(self, tenant_id: str, *, grace_seconds: int | None = None) -> RotatedKey:
        """Issues a new API key; the old one stops working at once, or after ``grace_seconds``."""
        return self._run(calls.tenants_rotate_key(tenant_id, grace_seconds))


class OAuthCredentials:
    def __init__(self, run: Run) -> None:
        self._run = run

    def put(
        self, tenant_id: str, integration: str, access_token: str, **fields: Unpack[CredentialFields]
    ) -> Credential:
        """Stores a tenant's credential for an OAuth integration; tokens are never returned."""
        return self._run(calls.oauth_put(tenant_id, integration, access_token, dict(fields)))

    def list(self, tenant_id: str) -> builtins.list[Credential]:
        return self._run(calls.oauth_list(tenant_id))

    def delete(self, tenant_id: str, integration: str) -> None:
        self._run(calls.oauth_delete(tenant_id, integration))


class Usage:
    def __init__(self, run: Run) -> None:
        self._run = run

    def get(self, tenant_id: str, *, month: str | None = None) -> UsageReport:
        """The usage report of a month (``YYYY-MM``; default: the current month)."""
        return self._run(calls.usage_get(tenant_id, month))


class Metrics:
    def __init__(self, run: Run) -> None:
        self._run = run

    def get(
        self, tenant_id: str, *, start_date: str | None = None, end_date: str | None = None
    ) -> TenantMetrics:
        """A tenant's counts over a date range (``YYYY-MM-DD``, inclusive)."""
        return self._run(calls.metrics_get(tenant_id, start_date, end_date))


class Audit:
    def __init__(self, run: Run) -> None:
        self._run = run

    def list(self, tenant_id: str, *, cursor: str | None = None, **options: Unpack[AuditOptions]) -> AuditPage:
        """One page of a tenant's audit log: ``{events, nextCursor}``."""
        return self._run(calls.audit_list(tenant_id, dict(options), cursor))

    def iterate(self, tenant_id: str, **options: Unpack[AuditOptions]) -> Iterator[AuditEvent]:
        """Every matching event, following ``nextCursor``."""
        return _pages(lambda cursor: self._run(calls.audit_list(tenant_id, dict(options), cursor)), "events")


class Integrations:
    def __init__(self, run: Run) -> None:
        self._run = run

    def create(self, name: str, url: str, **fields: Unpack[IntegrationFields]) -> Integration:
        """Registers a shared MCP server offered to every tenant; its tools are discovered at once."""
        return self._run(calls.integrations_create(name, url, dict(fields)))

    def list(self) -> builtins.list[Integration]:
        return self._run(calls.integrations_list())

    def refresh(self, name: str) -> Integration:
        """Discovers the integration's tools again."""
        return self._run(calls.integrations_refresh(name))

    def delete(self, name: str) -> None:
        self._run(calls.integrations_delete(name))


class Cluster:
    def __init__(self, run: Run) -> None:
        self._run = run

    def get(self) -> ClusterView:
        """The nodes of the cluster and the shards the answering node owns."""
        return self._run(calls.cluster_get())


class AdminAPI(_Client):
    """The admin API: ``AdminAPI(base_url=..., api_key=<admin key>)``; options as :class:`Connectors`."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 30.0,
        max_retries: int = 2,
        max_retry_delay: float = 60.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        config = ClientConfig(base_url, {"Authorization": f"Bearer {api_key}"}, timeout, max_retries, max_retry_delay)
        super().__init__(_Transport(config, http_client))
        run = self._transport.run
        self.tenants = Tenants(run)
        self.oauth = OAuthCredentials(run)
        self.usage = Usage(run)
        self.metrics = Metrics(run)
        self.audit = Audit(run)
        self.integrations = Integrations(run)
        self.cluster = Cluster(run)
