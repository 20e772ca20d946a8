"""Every API call as a :class:`Request`, built once for the sync and the async clients: paths,
query parameters and bodies with the wire's names."""

from __future__ import annotations

from typing import Any

from ._request import Request, segment
from .types import (
    AuditPage,
    ClusterView,
    Credential,
    Integration,
    Invocation,
    RotatedKey,
    Selection,
    Server,
    ServerAccepted,
    ServerSource,
    Tenant,
    TenantList,
    TenantMetrics,
    Tool,
    ToolList,
    UsageReport,
)

ADMIN = "/api/v1/admin"


def camel(options: dict[str, Any]) -> dict[str, Any]:
    """Option names as the wire spells them: ``max_tools`` → ``maxTools``."""
    out = {}
    for key, value in options.items():
        head, *rest = key.split("_")
        out[head + "".join(part.title() for part in rest)] = value
    return out


def _tenant(tenant_id: str, rest: str = "") -> str:
    return f"{ADMIN}/tenants/{segment(tenant_id)}{rest}"


# ----- tenant API ----------------------------------------------------------------------------------


def tools_select(query: str, options: dict[str, Any]) -> Request[Selection]:
    body: dict[str, Any] = {"query": query}
    if options:
        body["options"] = camel(options)
    return Request("POST", "/api/v1/tools/select", body=body)


def tools_list(options: dict[str, Any], cursor: str | None = None) -> Request[ToolList]:
    return Request("GET", "/api/v1/tools", query={**options, "cursor": cursor})


def tools_get(tool_id: str) -> Request[Tool]:
    return Request("GET", f"/api/v1/tools/{segment(tool_id)}")


def tools_invoke(tool_id: str, parameters: dict[str, Any] | None, selection_id: str | None) -> Request[Invocation]:
    body: dict[str, Any] = {"toolId": tool_id, "parameters": parameters or {}}
    if selection_id is not None:
        body["selectionId"] = selection_id
    return Request("POST", "/api/v1/tools/invoke", body=body)


def tools_feedback(tool_ids: list[str], selection_id: str | None, query: str | None) -> Request[None]:
    body: dict[str, Any] = {"toolIds": tool_ids}
    if selection_id is not None:
        body["selectionId"] = selection_id
    if query is not None:
        body["query"] = query
    return Request("POST", "/api/v1/tools/feedback", body=body)


def mcp_add(name: str, source: ServerSource, category: str, description: str | None) -> Request[ServerAccepted]:
    body: dict[str, Any] = {"name": name, "source": source, "category": category}
    if description is not None:
        body["description"] = description
    return Request("POST", "/api/v1/mcp/servers", body=body)


def mcp_list() -> Request[list[Server]]:
    return Request("GET", "/api/v1/mcp/servers", extract="servers")


def mcp_get(name: str) -> Request[Server]:
    return Request("GET", f"/api/v1/mcp/servers/{segment(name)}")


def mcp_delete(name: str) -> Request[Server]:
    return Request("DELETE", f"/api/v1/mcp/servers/{segment(name)}")


def tenant_get() -> Request[Tenant]:
    return Request("GET", "/api/v1/tenant")


# ----- admin API -----------------------------------------------------------------------------------


def tenants_create(tenant_id: str, name: str, fields: dict[str, Any]) -> Request[Tenant]:
    return Request("POST", f"{ADMIN}/tenants", body={"id": tenant_id, "name": name, **fields})


def tenants_list(options: dict[str, Any], cursor: str | None = None) -> Request[TenantList]:
    return Request("GET", f"{ADMIN}/tenants", query={**options, "cursor": cursor})


def tenants_get(tenant_id: str) -> Request[Tenant]:
    return Request("GET", _tenant(tenant_id))


def tenants_update(tenant_id: str, fields: dict[str, Any]) -> Request[Tenant]:
    return Request("PATCH", _tenant(tenant_id), body=fields)


def tenants_delete(tenant_id: str) -> Request[None]:
    return Request("DELETE", _tenant(tenant_id))


def tenants_rotate_key(tenant_id: str, grace_seconds: int | None) -> Request[RotatedKey]:
    body = {} if grace_seconds is None else {"graceSeconds": grace_seconds}
    return Request("POST", _tenant(tenant_id, "/rotate-key"), body=body)


def oauth_put(tenant_id: str, integration: str, access_token: str, fields: dict[str, Any]) -> Request[Credential]:
    body = {"accessToken": access_token, **camel(fields)}
    return Request("PUT", _tenant(tenant_id, f"/oauth/{segment(integration)}"), body=body)


def oauth_list(tenant_id: str) -> Request[list[Credential]]:
    return Request("GET", _tenant(tenant_id, "/oauth"), extract="integrations")


def oauth_delete(tenant_id: str, integration: str) -> Request[None]:
    return Request("DELETE", _tenant(tenant_id, f"/oauth/{segment(integration)}"))


def usage_get(tenant_id: str, month: str | None) -> Request[UsageReport]:
    return Request("GET", _tenant(tenant_id, "/usage"), query={"month": month})


def metrics_get(tenant_id: str, start_date: str | None, end_date: str | None) -> Request[TenantMetrics]:
    return Request("GET", _tenant(tenant_id, "/metrics"), query={"startDate": start_date, "endDate": end_date})


def audit_list(tenant_id: str, options: dict[str, Any], cursor: str | None = None) -> Request[AuditPage]:
    return Request("GET", _tenant(tenant_id, "/audit"), query={**options, "cursor": cursor})


def integrations_create(name: str, url: str, fields: dict[str, Any]) -> Request[Integration]:
    body: dict[str, Any] = {"name": name, "url": url, **fields}
    if "auth" in body:
        body["auth"] = {"type": body["auth"]}
    return Request("POST", f"{ADMIN}/integrations", body=body)


def integrations_list() -> Request[list[Integration]]:
    return Request("GET", f"{ADMIN}/integrations", extract="integrations")


def integrations_refresh(name: str) -> Request[Integration]:
    return Request("POST", f"{ADMIN}/integrations/{segment(name)}/refresh")


def integrations_delete(name: str) -> Request[None]:
    return Request("DELETE", f"{ADMIN}/integrations/{segment(name)}")


def cluster_get() -> Request[ClusterView]:
    return Request("GET", f"{ADMIN}/cluster")
