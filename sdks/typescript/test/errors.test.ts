import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthenticationError,
  Connectors,
  InvalidRequestError,
  PermissionDeniedError,
  RateLimitError,
} from "@connectors-gateway/sdk";

import { baseURL, ensureMinuteRoom, newTenant } from "./env.js";

test("401, 403 and 400 answers are typed errors with code and request id", async () => {
  const { created, client } = await newTenant("ts-errors");
  const wrongKey = new Connectors({ baseURL, tenantId: created.id, apiKey: "not-a-key" });
  await assert.rejects(wrongKey.tenant.get(), (error: unknown) => {
    assert.ok(error instanceof AuthenticationError);
    assert.equal(error.status, 401);
    assert.equal(error.code, "unauthorized");
    assert.ok(error.requestId);
    return true;
  });

  const { created: other } = await newTenant("ts-errors-other");
  const mismatch = new Connectors({ baseURL, tenantId: other.id, apiKey: created.apiKey });
  await assert.rejects(mismatch.tenant.get(), (error: unknown) => {
    assert.ok(error instanceof PermissionDeniedError);
    assert.equal(error.status, 403);
    assert.equal(error.code, "tenant_mismatch");
    return true;
  });

  await assert.rejects(client.tools.select("x", { maxTools: 0 }), (error: unknown) => {
    assert.ok(error instanceof InvalidRequestError);
    assert.equal(error.status, 400);
    assert.equal(error.code, "invalid_request");
    assert.match(error.message, /maxTools/);
    return true;
  });

  // Without a tenant id the gateway serves the key's own tenant.
  const ownTenant = new Connectors({ baseURL, apiKey: created.apiKey });
  assert.equal((await ownTenant.tenant.get()).id, created.id);
});

test("429: a RateLimitError with retryAfter, and a retry that waits for Retry-After", async () => {
  // Both requests after the first must fall in the same UTC minute as it.
  await ensureMinuteRoom(10);
  const { created } = await newTenant("ts-limited", { limits: { requestsPerMinute: 1 } });
  const statuses: number[] = [];
  const recordingFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    statuses.push(response.status);
    return response;
  };
  const noRetry = new Connectors({ baseURL, tenantId: created.id, apiKey: created.apiKey, maxRetries: 0 });
  const retrying = new Connectors({
    baseURL,
    tenantId: created.id,
    apiKey: created.apiKey,
    maxRetries: 3,
    fetch: recordingFetch,
  });
  const impatient = new Connectors({
    baseURL,
    tenantId: created.id,
    apiKey: created.apiKey,
    maxRetries: 3,
    maxRetryDelayMs: 1_000,
    fetch: recordingFetch,
  });

  await noRetry.tenant.get();
  const limited = await noRetry.tenant.get().then(
    () => assert.fail("the second request of the minute must be refused"),
    (error: unknown) => error,
  );
  assert.ok(limited instanceof RateLimitError);
  assert.equal(limited.status, 429);
  assert.equal(limited.code, "rate_limited");
  assert.ok(limited.requestId);
  assert.ok(limited.retryAfter !== undefined && limited.retryAfter >= 1 && limited.retryAfter <= 60, `${limited.retryAfter}`);
  assert.equal(limited.body.retryAfter, limited.retryAfter);

  // A wait longer than maxRetryDelayMs is not taken: the error comes back at once.
  await assert.rejects(impatient.tenant.get(), RateLimitError);
  assert.deepEqual(statuses, [429]);

  // The retrying client waits out the window and gets through.
  statuses.length = 0;
  const tenant = await retrying.tenant.get();
  assert.equal(tenant.id, created.id);
  assert.equal(statuses[0], 429);
  assert.equal(statuses.at(-1), 200);
});
