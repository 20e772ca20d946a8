/** The admin API client: `new AdminAPI({ baseURL, apiKey })`. */

import { paginate } from "./paginate.js";
import { Transport, type TransportOptions, segment } from "./transport.js";
import type {
  AuditEvent,
  AuditPage,
  AuditParams,
  ClusterView,
  CreateIntegrationParams,
  CreateTenantParams,
  CreatedTenant,
  Credential,
  Integration,
  ListTenantsParams,
  PutCredentialParams,
  RotatedKey,
  Tenant,
  TenantList,
  TenantMetrics,
  TenantWithUsage,
  UpdateTenantParams,
  UsageReport,
} from "./types.js";

export interface AdminAPIOptions extends TransportOptions {
  /** The gateway's admin key (`ADMIN_API_KEY`). */
  apiKey: string;
}

const ADMIN = "/api/v1/admin";

function tenantPath(id: string, rest = ""): string {
  return `${ADMIN}/tenants/${segment(id)}${rest}`;
}

export class AdminAPI {
  readonly tenants: TenantsAdmin;
  readonly oauth: OAuthAdmin;
  readonly usage: UsageAdmin;
  readonly metrics: MetricsAdmin;
  readonly audit: AuditAdmin;
  readonly integrations: IntegrationsAdmin;
  readonly cluster: ClusterAdmin;

  constructor(options: AdminAPIOptions) {
    if (!options.apiKey) throw new TypeError("apiKey is required");
    const transport = new Transport(options, { Authorization: `Bearer ${options.apiKey}` });
    this.tenants = new TenantsAdmin(transport);
    this.oauth = new OAuthAdmin(transport);
    this.usage = new UsageAdmin(transport);
    this.metrics = new MetricsAdmin(transport);
    this.audit = new AuditAdmin(transport);
    this.integrations = new IntegrationsAdmin(transport);
    this.cluster = new ClusterAdmin(transport);
  }
}

export class TenantsAdmin {
  constructor(private readonly transport: Transport) {}

  /** Creates a tenant; the answer carries its API key, shown this once. */
  create(params: CreateTenantParams): Promise<CreatedTenant> {
    return this.transport.request({ method: "POST", path: `${ADMIN}/tenants`, body: params });
  }

  list(params: ListTenantsParams = {}): Promise<TenantList> {
    return this.transport.request({ method: "GET", path: `${ADMIN}/tenants`, query: { ...params } });
  }

  /** Every tenant, following `nextCursor`. */
  iterate(params: Omit<ListTenantsParams, "cursor"> = {}): AsyncGenerator<Tenant, void, undefined> {
    return paginate(
      (cursor) => this.list({ ...params, cursor }),
      (page) => page.tenants,
    );
  }

  get(id: string): Promise<TenantWithUsage> {
    return this.transport.request({ method: "GET", path: tenantPath(id) });
  }

  update(id: string, params: UpdateTenantParams): Promise<Tenant> {
    return this.transport.request({ method: "PATCH", path: tenantPath(id), body: params });
  }

  /** Deletes a tenant: its keys stop working at once; its audit history is kept. */
  async delete(id: string): Promise<void> {
    await this.transport.request({ method: "DELETE", path: tenantPath(id) });
  }

  /** Issues a new API key; the old one stops working at once, or after `graceSeconds`. */
  rotateKey(id: string, options: { graceSeconds?: number } = {}): Promise<RotatedKey> {
    return this.transport.request({ method: "POST", path: tenantPath(id, "/rotate-key"), body: options });
  }
}

export class OAuthAdmin {
  constructor(private readonly transport: Transport) {}

  /** Stores a tenant's credential for an OAuth integration; tokens are never returned. */
  put(tenantId: string, integration: string, params: PutCredentialParams): Promise<Credential> {
    return this.transport.request({
      method: "PUT",
      path: tenantPath(tenantId, `/oauth/${segment(integration)}`),
      body: params,
    });
  }

  async list(tenantId: string): Promise<Credential[]> {
    const page = await this.transport.request<{ integrations: Credential[] }>({
      method: "GET",
      path: tenantPath(tenantId, "/oauth"),
    });
    return page.integrations;
  }

  async delete(tenantId: string, integration: string): Promise<void> {
    await this.transport.request({ method: "DELETE", path: tenantPath(tenantId, `/oauth/${segment(integration)}`) });
  }
}

export class UsageAdmin {
  constructor(private readonly transport: Transport) {}

  /** The usage report of a month (`YYYY-MM`; default: the current month). */
  get(tenantId: string, options: { month?: string } = {}): Promise<UsageReport> {
    return this.transport.request({ method: "GET", path: tenantPath(tenantId, "/usage"), query: { ...options } });
  }
}

export class MetricsAdmin {
  constructor(private readonly transport: Transport) {}

  /** A tenant's counts over a date range (`YYYY-MM-DD`, inclusive). */
  get(tenantId: string, options: { startDate?: string; endDate?: string } = {}): Promise<TenantMetrics> {
    return this.transport.request({ method: "GET", path: tenantPath(tenantId, "/metrics"), query: { ...options } });
  }
}

export class AuditAdmin {
  constructor(private readonly transport: Transport) {}

  /** One page of a tenant's audit log. */
  list(tenantId: string, params: AuditParams = {}): Promise<AuditPage> {
    return this.transport.request({ method: "GET", path: tenantPath(tenantId, "/audit"), query: { ...params } });
  }

  /** Every matching event, following `nextCursor`. */
  iterate(tenantId: string, params: Omit<AuditParams, "cursor"> = {}): AsyncGenerator<AuditEvent, void, undefined> {
    return paginate(
      (cursor) => this.list(tenantId, { ...params, cursor }),
      (page) => page.events,
    );
  }
}

export class IntegrationsAdmin {
  constructor(private readonly transport: Transport) {}

  /** Registers a shared MCP server offered to every tenant; its tools are discovered at once. */
  create(params: CreateIntegrationParams): Promise<Integration> {
    return this.transport.request({ method: "POST", path: `${ADMIN}/integrations`, body: params });
  }

  async list(): Promise<Integration[]> {
    const page = await this.transport.request<{ integrations: Integration[] }>({
      method: "GET",
      path: `${ADMIN}/integrations`,
    });
    return page.integrations;
  }

  /** Discovers the integration's tools again. */
  refresh(name: string): Promise<Integration> {
    return this.transport.request({ method: "POST", path: `${ADMIN}/integrations/${segment(name)}/refresh` });
  }

  async delete(name: string): Promise<void> {
    await this.transport.request({ method: "DELETE", path: `${ADMIN}/integrations/${segment(name)}` });
  }
}

export class ClusterAdmin {
  constructor(private readonly transport: Transport) {}

  /** The nodes of the cluster and the shards the answering node owns. */
  get(): Promise<ClusterView> {
    return this.transport.request({ method: "GET", path: `${ADMIN}/cluster` });
  }
}
