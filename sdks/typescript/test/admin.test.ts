import assert from "node:assert/strict";
import { test } from "node:test";

import { AuthenticationError, Connectors, NotFoundError } from "@connectors-gateway/sdk";

import { admin, baseURL, newTenant, unique } from "./env.js";

test("tenants: create, get, list, update, rotate the key, delete", async () => {
  const { created, client } = await newTenant("ts-admin", { email: "ops@example.com" });
  assert.match(created.apiKey, /\S{16,}/);
  assert.equal(created.status, "active");
  assert.equal(created.plan, "pro");
  assert.equal(created.email, "ops@example.com");

  const fetched = await admin.tenants.get(created.id);
  assert.equal(fetched.name, created.name);
  assert.equal(fetched.usage.tenantId, created.id);

  const ids: string[] = [];
  for await (const tenant of admin.tenants.iterate({ plan: "pro" })) ids.push(tenant.id);
  assert.ok(ids.includes(created.id), `${created.id} in ${ids.join(",")}`);
  const firstPage = await admin.tenants.list({ limit: 1 });
  assert.equal(firstPage.tenants.length, 1);
  assert.ok(firstPage.total >= 1);

  const updated = await admin.tenants.update(created.id, { name: "Renamed", limits: { requestsPerMinute: 500 } });
  assert.equal(updated.name, "Renamed");
  assert.equal(updated.limits.requestsPerMinute, 500);
  assert.equal(updated.limits.requestsPerHour, 50_000, "other limits keep their values");

  assert.equal((await client.tenant.get()).name, "Renamed");
  const { apiKey } = await admin.tenants.rotateKey(created.id);
  assert.notEqual(apiKey, created.apiKey);
  await assert.rejects(client.tenant.get(), (error: unknown) => {
    assert.ok(error instanceof AuthenticationError);
    assert.equal(error.status, 401);
    assert.equal(error.code, "unauthorized");
    return true;
  });
  const rotated = new Connectors({ baseURL, tenantId: created.id, apiKey });
  assert.equal((await rotated.tenant.get()).id, created.id);

  await admin.tenants.delete(created.id);
  await assert.rejects(admin.tenants.get(created.id), NotFoundError);
  await assert.rejects(rotated.tenant.get(), AuthenticationError);
});

test("oauth credentials: put, list, delete; secrets never come back", async () => {
  const { created } = await newTenant("ts-oauth");
  const integration = unique("vault");
  const stored = await admin.oauth.put(created.id, integration, {
    accessToken: "access-secret-1",
    refreshToken: "refresh-secret-1",
    expiresAt: "2099-01-01T00:00:00Z",
    scopes: ["repo"],
  });
  assert.equal(stored.integration, integration);
  assert.deepEqual(stored.scopes, ["repo"]);
  const listed = await admin.oauth.list(created.id);
  assert.deepEqual(
    listed.map((c) => c.integration),
    [integration],
  );
  assert.ok(!JSON.stringify(listed).includes("secret-1"), "tokens are never returned");
  await admin.oauth.delete(created.id, integration);
  assert.deepEqual(await admin.oauth.list(created.id), []);
  await assert.rejects(admin.oauth.delete(created.id, integration), NotFoundError);
});

test("cluster: a single node is up and owns every shard", async () => {
  const cluster = await admin.cluster.get();
  assert.equal(cluster.nodes.length, 1);
  assert.equal(cluster.nodes[0]?.status, "up");
  assert.equal(cluster.shards.owned, cluster.shards.total);
});

test("a wrong admin key is an AuthenticationError", async () => {
  const { AdminAPI } = await import("@connectors-gateway/sdk");
  const wrong = new AdminAPI({ baseURL, apiKey: "not-the-admin-key" });
  await assert.rejects(wrong.tenants.list(), (error: unknown) => {
    assert.ok(error instanceof AuthenticationError);
    assert.equal(error.code, "unauthorized");
    assert.ok(error.requestId, "the error carries the request id");
    return true;
  });
});
