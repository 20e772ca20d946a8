import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidRequestError, NotFoundError } from "@connectors-gateway/sdk";

import { admin, eventually, mcpURL, newTenant, textOf, unique } from "./env.js";

test("an integration's tools: select, list, get, invoke, feedback; then usage, audit and metrics", async () => {
  const name = unique("tsexample");
  const category = unique("ts-tools");
  const integration = await admin.integrations.create({ name, url: mcpURL, category, description: "SDK suite" });
  assert.equal(integration.status, "ready");
  assert.equal(integration.toolsDiscovered, 6);
  assert.ok((await admin.integrations.list()).some((i) => i.name === name));

  const { created, client } = await newTenant("ts-tools");

  const selection = await client.tools.select("add two numbers", { allowedCategories: [category] });
  assert.equal(selection.tools.tier1[0]?.id, `${name}.add`);
  assert.equal(selection.query, "add two numbers");
  assert.ok(selection.performance.tokenUsage <= selection.performance.tokenBudget);
  const tight = await client.tools.select("numbers", { tokenBudget: 60, maxTools: 6, allowedCategories: [category] });
  assert.ok(tight.performance.tokenUsage <= 60);

  const page = await client.tools.list({ category, limit: 4 });
  assert.equal(page.total, 6);
  assert.equal(page.tools.length, 4);
  assert.ok(page.nextCursor, "a second page exists");
  const all: string[] = [];
  for await (const tool of client.tools.iterate({ category, limit: 4 })) all.push(tool.id);
  assert.equal(all.length, 6);
  assert.ok(all.includes(`${name}.echo`));

  const add = await client.tools.get(`${name}.add`);
  assert.ok(add.inputSchema, "GET /tools/{id} carries the input schema");
  assert.deepEqual(Object.keys((add.inputSchema as { properties: object }).properties).sort(), ["a", "b"]);
  await assert.rejects(client.tools.get(`${name}.nothing`), NotFoundError);

  const sum = await client.tools.invoke({ toolId: `${name}.add`, parameters: { a: 2, b: 3 }, selectionId: selection.selectionId });
  assert.equal(sum.toolId, `${name}.add`);
  assert.equal(textOf(sum.result), "5");
  assert.equal(sum.result.isError, false);
  const failed = await client.tools.invoke({ toolId: `${name}.fail`, parameters: { message: "boom" } });
  assert.equal(failed.result.isError, true, "a tool's own failure is a result, not an exception");
  await assert.rejects(client.tools.invoke({ toolId: `${name}.nothing` }), (error: unknown) => {
    assert.ok(error instanceof NotFoundError);
    assert.equal(error.status, 404);
    assert.equal(error.code, "not_found");
    return true;
  });

  await client.tools.feedback({ query: "sum these", toolIds: [`${name}.add`] });
  await client.tools.feedback({ selectionId: selection.selectionId, toolIds: [`${name}.add`] });
  await assert.rejects(client.tools.feedback({ toolIds: [`${name}.add`] }), (error: unknown) => {
    assert.ok(error instanceof InvalidRequestError);
    assert.equal(error.status, 400);
    assert.equal(error.code, "invalid_request");
    assert.ok(error.requestId);
    return true;
  });

  const usage = await eventually("two invocations in the usage report", async () => {
    const report = await admin.usage.get(created.id);
    assert.equal(report.toolInvocations, 2, JSON.stringify(report));
    return report;
  });
  assert.equal(usage.tenantId, created.id);
  assert.match(usage.month, /^\d{4}-\d{2}$/);
  const tenant = await client.tenant.get();
  assert.equal(tenant.usage.toolInvocations, 2);

  const invokes = await eventually("the invocations in the audit log", async () => {
    const events = [];
    for await (const event of admin.audit.iterate(created.id, { action: "tools.invoke", limit: 2 })) events.push(event);
    assert.ok(events.length >= 3, `${events.length} events`);
    return events;
  });
  const audited = invokes.find((event) => event.toolId === `${name}.add`);
  assert.equal(audited?.result, "success");
  assert.equal(audited?.tenantId, created.id);

  const today = new Date().toISOString().slice(0, 10);
  const metrics = await eventually("the invocations in the metrics", async () => {
    const counts = await admin.metrics.get(created.id, { startDate: today, endDate: today });
    assert.equal(counts.tools.invocations, 2, JSON.stringify(counts));
    return counts;
  });
  assert.ok(metrics.tools.selections >= 2);
  assert.ok(metrics.requests.total >= 8);

  assert.equal((await admin.integrations.refresh(name)).toolsDiscovered, 6);
  await admin.integrations.delete(name);
  await assert.rejects(admin.integrations.delete(name), NotFoundError);
  await assert.rejects(client.tools.get(`${name}.add`), NotFoundError);
});
