// Drives the gateway's MCP endpoint with the official MCP TypeScript SDK
// (@modelcontextprotocol/sdk, 1.x), the same steps as python_client.py's `session` scenario.
//
// Run by tests/mcp_server_sdks.rs: `node typescript_client.cjs session <url> <tenant> <key>`, with
// MCP_SDK_NODE_MODULES naming the node_modules directory the SDK was installed into. Prints one
// JSON object per line; waits for a line on stdin where the test has something to do first.
"use strict";

const readline = require("node:readline");

const modules = process.env.MCP_SDK_NODE_MODULES;
const sdk = (path) => require(require.resolve(`@modelcontextprotocol/sdk/${path}`, { paths: [modules] }));
const { Client } = sdk("client/index.js");
const { StreamableHTTPClientTransport } = sdk("client/streamableHttp.js");
const { ToolListChangedNotificationSchema } = sdk("types.js");

const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");

const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
async function waitForTest() {
  const { done } = await lines.next();
  if (done) throw new Error("the test went away");
}

const textOf = (result) => result.content.map((block) => block.text ?? "").join("");

async function listAndCall(client, a, b) {
  const tools = await client.listTools();
  emit("tools", { names: tools.tools.map((tool) => tool.name) });
  const result = await client.callTool({ name: "example.add", arguments: { a, b } });
  emit("called", { text: textOf(result), isError: Boolean(result.isError) });
}

async function session(url, tenant, key) {
  let seen = 0;
  let wake = () => {};
  const client = new Client({ name: "gateway-e2e", version: "1.0.0" });
  client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    seen += 1;
    wake();
  });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { "X-Tenant-ID": tenant, Authorization: `Bearer ${key}` } },
    reconnectionOptions: { initialReconnectionDelay: 500, maxReconnectionDelay: 2000, reconnectionDelayGrowFactor: 1.5, maxRetries: 60 },
  });
  await client.connect(transport);
  emit("initialized", { protocolVersion: transport.protocolVersion });
  await listAndCall(client, 2, 3);
  for (const round of [1, 2]) {
    emit("waiting", { round });
    await waitForTest();
    const deadline = Date.now() + 60_000;
    while (seen < round) {
      if (Date.now() > deadline) throw new Error(`no tools/list_changed #${round} within 60 s`);
      await new Promise((resolve) => {
        wake = resolve;
        setTimeout(resolve, 1000);
      });
    }
    emit("list_changed", { count: seen });
  }
  await listAndCall(client, 20, 22);
  await transport.terminateSession();
  await client.close();
}

async function main() {
  const [scenario, url, tenant, key] = process.argv.slice(2);
  if (scenario !== "session") throw new Error(`unknown scenario ${scenario}`);
  await session(url, tenant, key);
  emit("done");
  input.close();
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(1);
});
