// The retry rules on answers a running gateway does not give on demand (503 with and without
// Retry-After, an HTTP-date Retry-After), served by a local HTTP server.
import assert from "node:assert/strict";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { Connectors, UnavailableError } from "@connectors-gateway/sdk";

/** Serves the scripted answers in order, then 200 `{id: "t"}`; counts requests. */
async function scripted(answers: { status: number; headers?: Record<string, string> }[]) {
  let served = 0;
  const server: Server = createServer((_request, response) => {
    const answer = answers[served++];
    if (answer) {
      response.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
      response.end(JSON.stringify({ error: "busy", code: "unavailable", requestId: `r${served}` }));
    } else {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ id: "t" }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { baseURL: `http://127.0.0.1:${port}`, served: () => served, close: () => server.close() };
}

test("503 is retried: Retry-After in seconds, as an HTTP date, and absent", async () => {
  const stub = await scripted([
    { status: 503, headers: { "retry-after": "0" } },
    { status: 503, headers: { "retry-after": new Date(Date.now() - 1000).toUTCString() } },
    { status: 503 },
  ]);
  try {
    const client = new Connectors({ baseURL: stub.baseURL, apiKey: "k", maxRetries: 3 });
    assert.equal((await client.tenant.get()).id, "t");
    assert.equal(stub.served(), 4);
  } finally {
    stub.close();
  }
});

test("retries are bounded, and maxRetries: 0 turns them off", async () => {
  const stub = await scripted(Array.from({ length: 10 }, () => ({ status: 503, headers: { "retry-after": "0" } })));
  try {
    const bounded = new Connectors({ baseURL: stub.baseURL, apiKey: "k", maxRetries: 2 });
    await assert.rejects(bounded.tenant.get(), (error: unknown) => {
      assert.ok(error instanceof UnavailableError);
      assert.equal(error.retryAfter, 0);
      assert.equal(error.requestId, "r3");
      return true;
    });
    assert.equal(stub.served(), 3);
    const off = new Connectors({ baseURL: stub.baseURL, apiKey: "k", maxRetries: 0 });
    await assert.rejects(off.tenant.get(), UnavailableError);
    assert.equal(stub.served(), 4);
  } finally {
    stub.close();
  }
});
