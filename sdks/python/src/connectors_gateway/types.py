"""The JSON shapes of the gateway's HTTP API (docs/API.md), as ``TypedDict``\\ s with the wire's
camelCase keys, and the keyword options of the calls, in snake_case."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# ----- tenants -------------------------------------------------------------------------------------

Limits = TypedDict(
    "Limits",
    {
        "requestsPerMinute": int,
        "requestsPerHour": int,
        "requestsPerDay": int,
        "maxCustomServers": int,
        "maxToolInvocations": int,
        "maxStorageMB": int,
    },
)


class Features(TypedDict):
    customServers: bool
    oauth: bool
    advancedAnalytics: bool


class Security(TypedDict):
    allowedIPs: list[str]


class McpListing(TypedDict):
    """What the gateway's MCP endpoint lists: ``full`` (every tool), ``categories`` (those of
    ``categories``) or ``search`` (the meta-tools ``find_tools`` and ``call_tool``)."""

    toolList: Literal["full", "categories", "search"]
    categories: NotRequired[list[str]]


class UsageReport(TypedDict):
    tenantId: str
    month: str
    apiCalls: int
    apiCallsCost: float
    toolInvocations: int
    toolInvocationsCost: float
    customServers: int
    customServersCost: float
    totalCost: float
    currency: str


class Tenant(TypedDict):
    id: str
    name: str
    email: str | None
    plan: str
    status: Literal["active", "suspended"]
    limits: Limits
    features: Features
    security: Security
    mcp: McpListing
    createdAt: str
    updatedAt: str
    #: On ``GET /tenant`` and ``GET /admin/tenants/{id}``: this month's usage.
    usage: NotRequired[UsageReport]
    #: On ``POST /admin/tenants`` only: the API key, shown this once.
    apiKey: NotRequired[str]


class TenantList(TypedDict):
    tenants: list[Tenant]
    total: int
    nextCursor: NotRequired[str | None]


class RotatedKey(TypedDict):
    apiKey: str


class DailyUsage(TypedDict):
    date: str
    requests: int
    apiCalls: int
    rateLimited: int
    errors: int
    toolInvocations: int
    selections: int
    tokens: int


class TenantMetrics(TypedDict):
    tenantId: str
    startDate: str
    endDate: str
    requests: dict[str, int]
    tools: dict[str, int]
    servers: dict[str, int]
    tokens: dict[str, int]
    cost: dict[str, float]
    #: Only with the ``advancedAnalytics`` feature: one entry per day with usage, oldest first.
    daily: NotRequired[list[DailyUsage] | None]
    #: Only with the ``advancedAnalytics`` feature: ``{tools: [{toolId, calls, errors}], complete}``.
    byTool: NotRequired[dict[str, Any] | None]


class AuditEvent(TypedDict):
    timestamp: str
    tenantId: str
    userId: NotRequired[str]
    action: str
    toolId: NotRequired[str]
    params: NotRequired[Any]
    result: Literal["success", "denied", "error"]
    duration: float
    ip: NotRequired[str]
    userAgent: NotRequired[str]
    requestId: str


class AuditPage(TypedDict):
    events: list[AuditEvent]
    nextCursor: NotRequired[str | None]


class Credential(TypedDict):
    integration: str
    expiresAt: str | None
    scopes: list[str]
    status: str
    lastRefreshAt: NotRequired[str | None]


class Integration(TypedDict):
    name: str
    url: str
    category: str
    description: NotRequired[str | None]
    auth: NotRequired[dict[str, str]]
    status: str
    toolsDiscovered: int
    tools: NotRequired[list[str]]
    discoveredAt: NotRequired[str]
    error: NotRequired[str]


class ClusterNode(TypedDict):
    id: str
    addr: str
    status: Literal["up", "joining", "draining", "down"]


class ClusterView(TypedDict):
    nodeId: str
    epoch: int
    nodes: list[ClusterNode]
    shards: dict[str, int]


# ----- tools ---------------------------------------------------------------------------------------


class Tool(TypedDict):
    id: str
    name: str
    integration: NotRequired[str]
    category: NotRequired[str]
    description: NotRequired[str]
    score: NotRequired[float]
    parameters: NotRequired[Any]
    #: Tier 3 of a selection: the path of ``GET /tools/{id}``.
    loadUrl: NotRequired[str]
    #: On ``GET /tools/{id}``.
    inputSchema: NotRequired[dict[str, Any]]


class Tiers(TypedDict):
    tier1: list[Tool]
    tier2: list[Tool]
    tier3: list[Tool]


class Performance(TypedDict):
    totalTools: int
    tokenUsage: int
    tokenBudget: int
    latencyMs: float


class Selection(TypedDict):
    selectionId: str
    query: str
    tools: Tiers
    performance: Performance


class ToolList(TypedDict):
    tools: list[Tool]
    total: int
    nextCursor: NotRequired[str | None]


class CallToolResult(TypedDict):
    """MCP ``CallToolResult``."""

    content: list[dict[str, Any]]
    isError: NotRequired[bool]
    structuredContent: NotRequired[Any]


class Invocation(TypedDict):
    toolId: str
    result: CallToolResult
    latencyMs: float


# ----- MCP servers ---------------------------------------------------------------------------------


class ServerSource(TypedDict, total=False):
    type: Literal["github", "docker", "http", "stdio"]
    url: str
    image: str
    command: str
    args: list[str]
    #: For ``http``: the integration whose OAuth credential is injected.
    oauthIntegration: str


class ServerAccepted(TypedDict):
    deploymentId: str
    name: str
    status: str
    namespace: str


class Server(TypedDict):
    name: str
    deploymentId: NotRequired[str]
    category: str
    description: NotRequired[str | None]
    source: ServerSource
    status: Literal["pending", "deploying", "ready", "failed", "deleting"]
    namespace: str
    endpoint: str | None
    toolsDiscovered: int
    createdAt: str
    error: NotRequired[str]


# ----- keyword options of the calls (snake_case; sent camelCase) -----------------------------------


class SelectOptions(TypedDict, total=False):
    max_tools: int
    token_budget: int
    allowed_categories: list[str]
    include_schemas: bool


class ListToolsOptions(TypedDict, total=False):
    category: str
    limit: int


class NewTenantFields(TypedDict, total=False):
    """Optional fields of a new tenant; ``limits``/``features``/``security`` use the wire's keys."""

    email: str | None
    plan: str
    limits: dict[str, int | None]
    features: dict[str, bool | None]
    security: dict[str, list[str]]
    #: Replaces the MCP listing as a whole.
    mcp: McpListing


class TenantFields(NewTenantFields, total=False):
    """Fields of a tenant to change; ``limits``/``features``/``security`` merge key by key
    (``None`` returns a key to its default)."""

    name: str
    status: Literal["active", "suspended"]


class ListTenantsOptions(TypedDict, total=False):
    limit: int
    plan: str
    status: Literal["active", "suspended"]


class AuditOptions(TypedDict, total=False):
    #: RFC 3339 time.
    since: str
    #: RFC 3339 time.
    until: str
    action: str
    limit: int


class CredentialFields(TypedDict, total=False):
    refresh_token: str
    #: RFC 3339 time.
    expires_at: str
    scopes: list[str]
    token_endpoint: str
    client_id: str
    client_secret: str


class IntegrationFields(TypedDict, total=False):
    category: str
    description: str
    auth: Literal["oauth", "none"]
