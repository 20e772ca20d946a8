/** The tenant API client: `new Connectors({ baseURL, tenantId, apiKey })`. */

import { ConnectorsError } from "./errors.js";
import { paginate } from "./paginate.js";
import { Transport, type TransportOptions, segment } from "./transport.js";
import type {
  AddServerParams,
  FeedbackParams,
  Invocation,
  InvokeParams,
  ListToolsParams,
  SelectOptions,
  Selection,
  Server,
  ServerAccepted,
  TenantWithUsage,
  Tool,
  ToolList,
} from "./types.js";

export interface ConnectorsOptions extends TransportOptions {
  /** The tenant's API key. */
  apiKey: string;
  /** The tenant id; when omitted the gateway serves the key's own tenant. */
  tenantId?: string;
  /** Header carrying the tenant id (the gateway's `tenantIdHeader`; default `X-Tenant-ID`). */
  tenantIdHeader?: string;
  /**
   * Header carrying the key (the gateway's `apiKeyHeader`; default `Authorization`, sent as
   * `Bearer <key>`; any other header carries the bare key).
   */
  apiKeyHeader?: string;
}

export class Connectors {
  readonly tools: ToolsAPI;
  readonly mcp: McpAPI;
  readonly tenant: TenantAPI;

  constructor(options: ConnectorsOptions) {
    if (!options.apiKey) throw new TypeError("apiKey is required");
    const keyHeader = options.apiKeyHeader ?? "Authorization";
    const headers: Record<string, string> = {
      [keyHeader]: keyHeader.toLowerCase() === "authorization" ? `Bearer ${options.apiKey}` : options.apiKey,
    };
    if (options.tenantId) headers[options.tenantIdHeader ?? "X-Tenant-ID"] = options.tenantId;
    const transport = new Transport(options, headers);
    this.tools = new ToolsAPI(transport);
    this.mcp = new McpAPI(transport);
    this.tenant = new TenantAPI(transport);
  }
}

export class ToolsAPI {
  constructor(private readonly transport: Transport) {}

  /** Ranks the tenant's tools for a query into tiers that fit the token budget. */
  select(query: string, options?: SelectOptions): Promise<Selection> {
    const body = options === undefined ? { query } : { query, options };
    return this.transport.request({ method: "POST", path: "/api/v1/tools/select", body });
  }

  /** One page of the tools this tenant may use. */
  list(params: ListToolsParams = {}): Promise<ToolList> {
    return this.transport.request({ method: "GET", path: "/api/v1/tools", query: { ...params } });
  }

  /** Every tool this tenant may use, following `nextCursor`. */
  iterate(params: Omit<ListToolsParams, "cursor"> = {}): AsyncGenerator<Tool, void, undefined> {
    return paginate(
      (cursor) => this.list({ ...params, cursor }),
      (page) => page.tools,
    );
  }

  /** One tool with its `inputSchema`. */
  get(id: string): Promise<Tool> {
    return this.transport.request({ method: "GET", path: `/api/v1/tools/${segment(id)}` });
  }

  /** Calls a tool; a tool's own failure is a result with `isError: true`, not an exception. */
  invoke(params: InvokeParams): Promise<Invocation> {
    return this.transport.request({ method: "POST", path: "/api/v1/tools/invoke", body: params });
  }

  /** Tells the gateway which tools served a query. */
  async feedback(params: FeedbackParams): Promise<void> {
    await this.transport.request({ method: "POST", path: "/api/v1/tools/feedback", body: params });
  }
}

export interface WaitOptions {
  /** Give up after this long (default 60 000 ms). */
  timeoutMs?: number;
  /** Time between two looks (default 500 ms). */
  intervalMs?: number;
}

export class McpAPI {
  constructor(private readonly transport: Transport) {}

  /** Registers one of the tenant's own MCP servers; its deployment goes on in the background. */
  add(params: AddServerParams): Promise<ServerAccepted> {
    return this.transport.request({ method: "POST", path: "/api/v1/mcp/servers", body: params });
  }

  async list(): Promise<Server[]> {
    const page = await this.transport.request<{ servers: Server[] }>({ method: "GET", path: "/api/v1/mcp/servers" });
    return page.servers;
  }

  get(name: string): Promise<Server> {
    return this.transport.request({ method: "GET", path: `/api/v1/mcp/servers/${segment(name)}` });
  }

  /** Starts removing a server (status `deleting`); it is gone shortly after. */
  delete(name: string): Promise<Server> {
    return this.transport.request({ method: "DELETE", path: `/api/v1/mcp/servers/${segment(name)}` });
  }

  /** Polls a server until it is `ready`; throws when it `failed` or the time is up. */
  async waitUntilReady(name: string, options: WaitOptions = {}): Promise<Server> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      const server = await this.get(name);
      if (server.status === "ready") return server;
      if (server.status === "failed") {
        throw new ConnectorsError(`MCP server ${name} failed to deploy: ${server.error ?? "no reason given"}`);
      }
      if (Date.now() >= deadline) {
        throw new ConnectorsError(`MCP server ${name} is still ${server.status} after the wait`);
      }
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 500));
    }
  }
}

export class TenantAPI {
  constructor(private readonly transport: Transport) {}

  /** The caller's tenant with this month's usage. */
  get(): Promise<TenantWithUsage> {
    return this.transport.request({ method: "GET", path: "/api/v1/tenant" });
  }
}
