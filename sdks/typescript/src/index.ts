export { Connectors, type ConnectorsOptions, ToolsAPI, McpAPI, TenantAPI, type WaitOptions } from "./connectors.js";
export {
  AdminAPI,
  type AdminAPIOptions,
  TenantsAdmin,
  OAuthAdmin,
  UsageAdmin,
  MetricsAdmin,
  AuditAdmin,
  IntegrationsAdmin,
  ClusterAdmin,
} from "./admin.js";
export * from "./errors.js";
export type { TransportOptions } from "./transport.js";
export type * from "./types.js";
