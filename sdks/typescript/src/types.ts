/** The JSON shapes of the gateway's HTTP API (docs/API.md). Field names are the wire's. */

// ----- tenants ------------------------------------------------------------------------------------

export interface Limits {
  requestsPerMinute: number;
  requestsPerHour: number;
  requestsPerDay: number;
  maxCustomServers: number;
  maxToolInvocations: number;
  maxStorageMB: number;
}

export interface Features {
  customServers: boolean;
  oauth: boolean;
  advancedAnalytics: boolean;
}

export interface Security {
  allowedIPs: string[];
}

export type TenantStatus = "active" | "suspended";

/** What the gateway's MCP endpoint lists to the tenant's clients. */
export interface McpListing {
  /** `full`: every tool; `categories`: those of `categories`; `search`: `find_tools` and `call_tool`. */
  toolList: "full" | "categories" | "search";
  categories?: string[];
}

export interface Tenant {
  id: string;
  name: string;
  email: string | null;
  plan: string;
  status: TenantStatus;
  limits: Limits;
  features: Features;
  security: Security;
  mcp: McpListing;
  createdAt: string;
  updatedAt: string;
}

/** `GET /tenant` and `GET /admin/tenants/{id}` add the current month's usage. */
export interface TenantWithUsage extends Tenant {
  usage: UsageReport;
}

/** `POST /admin/tenants` answers the tenant with its API key, shown this once. */
export interface CreatedTenant extends Tenant {
  apiKey: string;
}

export interface CreateTenantParams {
  id: string;
  name: string;
  email?: string;
  plan?: string;
  limits?: Partial<Limits>;
  features?: Partial<Features>;
  security?: Partial<Security>;
  mcp?: McpListing;
}

/** Keys of `limits`, `features` and `security` merge one by one; `null` returns one to its default. */
export interface UpdateTenantParams {
  name?: string;
  email?: string | null;
  plan?: string;
  status?: TenantStatus;
  limits?: { [K in keyof Limits]?: number | null };
  features?: { [K in keyof Features]?: boolean | null };
  security?: Partial<Security>;
  /** Replaces the listing as a whole. */
  mcp?: McpListing;
}

export interface ListTenantsParams {
  limit?: number;
  cursor?: string;
  plan?: string;
  status?: TenantStatus;
}

export interface TenantList {
  tenants: Tenant[];
  total: number;
  nextCursor?: string | null;
}

export interface RotatedKey {
  apiKey: string;
}

// ----- usage, metrics, audit ----------------------------------------------------------------------

export interface UsageReport {
  tenantId: string;
  month: string;
  apiCalls: number;
  apiCallsCost: number;
  toolInvocations: number;
  toolInvocationsCost: number;
  customServers: number;
  customServersCost: number;
  totalCost: number;
  currency: string;
}

export interface TenantMetrics {
  tenantId: string;
  startDate: string;
  endDate: string;
  requests: { total: number; rateLimited: number; errors: number };
  tools: { invocations: number; selections: number };
  servers: { custom: number };
  tokens: { total: number };
  cost: { total: number };
  /** One entry per day with usage, oldest first; only with the `advancedAnalytics` feature. */
  daily?: DailyUsage[] | null;
  /** Invocations per tool, most called first; only with the `advancedAnalytics` feature. */
  byTool?: { tools: { toolId: string; calls: number; errors: number }[]; complete: boolean } | null;
}

export interface DailyUsage {
  date: string;
  requests: number;
  apiCalls: number;
  rateLimited: number;
  errors: number;
  toolInvocations: number;
  selections: number;
  tokens: number;
}

export interface AuditEvent {
  timestamp: string;
  tenantId: string;
  userId?: string;
  action: string;
  toolId?: string;
  params?: unknown;
  result: "success" | "denied" | "error";
  duration: number;
  ip?: string;
  userAgent?: string;
  requestId: string;
}

export interface AuditParams {
  /** RFC 3339 time. */
  since?: string;
  /** RFC 3339 time. */
  until?: string;
  action?: string;
  limit?: number;
  cursor?: string;
}

export interface AuditPage {
  events: AuditEvent[];
  nextCursor?: string | null;
}

// ----- OAuth credentials --------------------------------------------------------------------------

export interface PutCredentialParams {
  accessToken: string;
  refreshToken?: string;
  /** RFC 3339 time. */
  expiresAt?: string;
  scopes?: string[];
  tokenEndpoint?: string;
  clientId?: string;
  clientSecret?: string;
}

export interface Credential {
  integration: string;
  expiresAt: string | null;
  scopes: string[];
  status: string;
  lastRefreshAt?: string | null;
}

// ----- integrations and cluster -------------------------------------------------------------------

export interface CreateIntegrationParams {
  name: string;
  url: string;
  category?: string;
  description?: string;
  auth?: { type: "oauth" | "none" };
}

export interface Integration {
  name: string;
  url: string;
  category: string;
  description?: string | null;
  auth?: { type: "oauth" | "none" };
  status: string;
  toolsDiscovered: number;
  tools?: string[];
  discoveredAt?: string;
  error?: string;
}

export interface ClusterView {
  nodeId: string;
  epoch: number;
  nodes: { id: string; addr: string; status: "up" | "joining" | "draining" | "down" }[];
  shards: { total: number; owned: number };
}

// ----- tools ------------------------------------------------------------------------------------

export interface SelectOptions {
  maxTools?: number;
  tokenBudget?: number;
  allowedCategories?: string[];
  includeSchemas?: boolean;
}

export interface Tier1Tool {
  id: string;
  name: string;
  category: string;
  description: string;
  score: number;
}

export interface Tier2Tool extends Tier1Tool {
  parameters: unknown;
}

export interface Tier3Tool {
  id: string;
  name: string;
  /** Path of `GET /tools/{id}` for this tool. */
  loadUrl: string;
}

export interface Selection {
  selectionId: string;
  query: string;
  tools: { tier1: Tier1Tool[]; tier2: Tier2Tool[]; tier3: Tier3Tool[] };
  performance: { totalTools: number; tokenUsage: number; tokenBudget: number; latencyMs: number };
}

export interface Tool {
  id: string;
  name: string;
  integration?: string;
  category: string;
  description: string;
  parameters?: unknown;
  /** Present on `GET /tools/{id}`. */
  inputSchema?: Record<string, unknown>;
}

export interface ListToolsParams {
  category?: string;
  limit?: number;
  cursor?: string;
}

export interface ToolList {
  tools: Tool[];
  total: number;
  nextCursor?: string | null;
}

export interface InvokeParams {
  toolId: string;
  parameters?: Record<string, unknown>;
  selectionId?: string;
}

/** MCP `CallToolResult`. */
export interface CallToolResult {
  content: ({ type: "text"; text: string } | { type: string; [field: string]: unknown })[];
  isError?: boolean;
  structuredContent?: unknown;
  [field: string]: unknown;
}

export interface Invocation {
  toolId: string;
  result: CallToolResult;
  latencyMs: number;
}

export interface FeedbackParams {
  selectionId?: string;
  query?: string;
  toolIds: string[];
}

// ----- MCP servers --------------------------------------------------------------------------------

export interface ServerSource {
  type: "github" | "docker" | "http" | "stdio";
  url?: string;
  image?: string;
  command?: string;
  args?: string[];
  /** For `http`: the integration whose OAuth credential is injected. */
  oauthIntegration?: string;
}

export interface AddServerParams {
  name: string;
  source: ServerSource;
  category: string;
  description?: string;
}

export type ServerStatus = "pending" | "deploying" | "ready" | "failed" | "deleting";

export interface ServerAccepted {
  deploymentId: string;
  name: string;
  status: ServerStatus;
  namespace: string;
}

export interface Server {
  name: string;
  deploymentId?: string;
  category: string;
  description?: string | null;
  source: ServerSource;
  status: ServerStatus;
  namespace: string;
  endpoint: string | null;
  toolsDiscovered: number;
  createdAt: string;
  error?: string;
}
