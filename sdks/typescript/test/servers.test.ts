import assert from "node:assert/strict";
import { test } from "node:test";

import { ConflictError, InvalidRequestError, NotFoundError } from "@connectors-gateway/sdk";

import { eventually, mcpURL, newTenant, textOf, unique } from "./env.js";

test("a tenant's MCP server: add, get, list, use its tools, delete", async () => {
  const { created, client } = await newTenant("ts-servers");
  const name = unique("notes");
  const accepted = await client.mcp.add({ name, category: "productivity", source: { type: "http", url: mcpURL } });
  assert.equal(accepted.name, name);
  assert.equal(accepted.status, "pending");
  assert.equal(accepted.namespace, `tenant-${created.id}`);
  assert.ok(accepted.deploymentId);

  const ready = await client.mcp.waitUntilReady(name, { timeoutMs: 30_000, intervalMs: 100 });
  assert.equal(ready.toolsDiscovered, 6);
  assert.equal(ready.source.type, "http");
  assert.equal(ready.endpoint, mcpURL);
  assert.deepEqual(
    (await client.mcp.list()).map((server) => server.name),
    [name],
  );
  await assert.rejects(
    client.mcp.add({ name, category: "productivity", source: { type: "http", url: mcpURL } }),
    ConflictError,
  );

  const echo = await client.tools.invoke({ toolId: `${name}.echo`, parameters: { text: "hello" } });
  assert.ok(textOf(echo.result).includes("hello"));

  const deleting = await client.mcp.delete(name);
  assert.equal(deleting.status, "deleting");
  await eventually("the server to be gone", async () => {
    await assert.rejects(client.mcp.get(name), NotFoundError);
  });
  assert.deepEqual(await client.mcp.list(), []);
});

test("a github source without the Kubernetes deployer is a 422 InvalidRequestError", async () => {
  const { client } = await newTenant("ts-deployer");
  await assert.rejects(
    client.mcp.add({ name: "gh", category: "x", source: { type: "github", url: "https://github.com/acme/server" } }),
    (error: unknown) => {
      assert.ok(error instanceof InvalidRequestError);
      assert.equal(error.status, 422);
      assert.equal(error.code, "deployer_unavailable");
      assert.equal(error.body.sourceType, "github");
      return true;
    },
  );
});
