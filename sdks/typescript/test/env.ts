/**
 * What the suite runs against: a real gateway (`CONNECTORS_BASE_URL`, admin key
 * `CONNECTORS_ADMIN_KEY`) and a real MCP server it may call (`CONNECTORS_MCP_URL`, streamable
 * HTTP), all named by environment variables. The repository's `tests/sdks.rs` starts both and
 * runs this suite.
 */

import { randomBytes } from "node:crypto";

import { AdminAPI, Connectors, type CreatedTenant } from "@connectors-gateway/sdk";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: the suite runs against a real gateway (see README.md)`);
  return value;
}

export const baseURL = required("CONNECTORS_BASE_URL");
export const adminKey = required("CONNECTORS_ADMIN_KEY");
export const mcpURL = required("CONNECTORS_MCP_URL");

export const admin = new AdminAPI({ baseURL, apiKey: adminKey });

/** A name no other run of the suite uses, so it can run again against the same gateway. */
export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** A fresh `pro` tenant and a client for it. */
export async function newTenant(prefix: string, extra: Partial<Parameters<AdminAPI["tenants"]["create"]>[0]> = {}) {
  const created: CreatedTenant = await admin.tenants.create({ id: unique(prefix), name: `SDK ${prefix}`, plan: "pro", ...extra });
  const client = new Connectors({ baseURL, tenantId: created.id, apiKey: created.apiKey });
  return { created, client };
}

/** Retries `check` every 100 ms until it returns without throwing, for at most `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}: ${String(error)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Rate windows are UTC minutes: waits for the next minute when this one has under `seconds` left. */
export async function ensureMinuteRoom(seconds: number): Promise<void> {
  const now = new Date();
  const leftMs = 60_000 - (now.getUTCSeconds() * 1000 + now.getUTCMilliseconds());
  if (leftMs < seconds * 1000) await new Promise((resolve) => setTimeout(resolve, leftMs + 150));
}

/** The text of an MCP `CallToolResult`. */
export function textOf(result: { content: { type: string; text?: unknown }[] }): string {
  return result.content.map((part) => (part.type === "text" ? String(part.text) : "")).join("");
}
