// Quickstart: an operator creates a tenant and offers it an MCP server; the tenant selects the
// right tool for a question and calls it.
//
//   CONNECTORS_BASE_URL=http://localhost:8080 CONNECTORS_ADMIN_KEY=... \
//   CONNECTORS_MCP_URL=http://127.0.0.1:8931/mcp node build/examples/quickstart.js
//
// CONNECTORS_MCP_URL is any MCP server speaking streamable HTTP, e.g. the repository's example
// server (`cargo run -p mcp-example-server -- --http 127.0.0.1:8931`).

import { randomBytes } from "node:crypto";

import { AdminAPI, ApiError, Connectors } from "@connectors-gateway/sdk";

const baseURL = process.env.CONNECTORS_BASE_URL ?? "http://localhost:8080";
const adminKey = process.env.CONNECTORS_ADMIN_KEY;
const mcpURL = process.env.CONNECTORS_MCP_URL;
if (!adminKey || !mcpURL) {
  console.error("set CONNECTORS_ADMIN_KEY and CONNECTORS_MCP_URL (and CONNECTORS_BASE_URL)");
  process.exit(2);
}

const suffix = randomBytes(3).toString("hex");
const admin = new AdminAPI({ baseURL, apiKey: adminKey });

// The operator's side: a shared integration and a tenant with its API key.
const integration = await admin.integrations.create({ name: `calc-${suffix}`, url: mcpURL, category: `calc-${suffix}` });
console.log(`integration ${integration.name}: ${integration.toolsDiscovered} tools`);
const tenant = await admin.tenants.create({ id: `quickstart-${suffix}`, name: "Quickstart Inc.", plan: "pro" });
console.log(`tenant ${tenant.id} created`);

try {
  // The tenant's side.
  const connectors = new Connectors({ baseURL, tenantId: tenant.id, apiKey: tenant.apiKey });
  const selection = await connectors.tools.select("add two numbers", { allowedCategories: [integration.category] });
  const best = selection.tools.tier1[0];
  if (!best) throw new Error("no tool selected");
  console.log(`selected ${best.id} (score ${best.score.toFixed(3)})`);

  const answer = await connectors.tools.invoke({
    toolId: best.id,
    parameters: { a: 20, b: 22 },
    selectionId: selection.selectionId,
  });
  const text = answer.result.content.map((part) => ("text" in part ? part.text : "")).join("");
  console.log(`${best.id}(20, 22) = ${text}`);

  try {
    await connectors.tools.get(`${integration.name}.missing`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    console.log(`typed error: ${error.status} ${error.code} (request ${error.requestId})`);
  }
} finally {
  await admin.tenants.delete(tenant.id);
  await admin.integrations.delete(integration.name);
}
