import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { promisify } from "node:util";

test("examples/quickstart runs against the gateway", async () => {
  const script = fileURLToPath(new URL("../examples/quickstart.js", import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script], { env: process.env });
  assert.match(stdout, /integration calc-\w+: 6 tools/);
  assert.match(stdout, /selected calc-\w+\.add/);
  assert.match(stdout, /= 42/);
  assert.match(stdout, /typed error: 404 not_found \(request \S+\)/);
});
