/**
 * Graceful drain: SIGTERM to the bin with --http lets runs in flight finish, refuses new sessions, turns
 * /readyz to 503, then exits with no child left.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import assert from "node:assert/strict";
import { childPids, eventually, isAlive, toolOutput } from "../_helpers.ts";
import { connect, eventuallyAsync, py, scrape, startHttp, TOKEN } from "../_http.ts";

Deno.test("SIGTERM drains: runs in flight finish, new sessions are refused, then every process exits", async (t) => {
  const server = await startHttp({ CODE_RUNNER_HTTP_TOKEN: TOKEN, CODE_RUNNER_HTTP_DRAIN_GRACE_MS: "60000" });
  assert.ok(server.url, `no URL in: ${server.text}`);
  const url = server.url as string;
  const clients: Client[] = [];
  try {
    const client = await connect(url);
    clients.push(client);
    await py(client, "import time; state = 'kept'");
    const slowPython = py(client, "time.sleep(3); state");
    const slowJs = client.callTool(
      {
        name: "run_javascript",
        arguments: { code: "await new Promise((r) => setTimeout(r, 3000)); console.log('js done')" },
      },
      undefined,
      { timeout: 60_000 },
    );
    assert.ok(
      await eventuallyAsync(async () => (await scrape(url)).get("code_runner_http_requests_in_flight") === 2),
      "the two runs never started",
    );
    const children = childPids(server.child.pid);
    assert.ok(children.length >= 2, `expected Python and JavaScript children, got ${children}`);
    server.child.kill("SIGTERM");

    await t.step("/readyz turns 503 and says why; /healthz still answers", async () => {
      assert.ok(
        await eventuallyAsync(async () => {
          const response = await fetch(new URL("/readyz", url));
          const body = await response.json();
          return response.status === 503 && body.reasons.includes("draining");
        }),
        "/readyz never said draining",
      );
      assert.equal((await fetch(new URL("/healthz", url)).then((r) => r.json())).status, "ok");
    });

    await t.step("a new session is refused with a clear error", async () => {
      await assert.rejects(connect(url), /shutting down/);
    });

    await t.step("the runs in flight finish and their results arrive", async () => {
      const python = await slowPython;
      assert.equal(python.result.status, "ok");
      assert.equal(python.result.result, "'kept'");
      assert.equal(toolOutput(await slowJs).result.stdout, "js done\n");
    });

    await t.step("then the server exits cleanly and no child is left", async () => {
      const status = await server.child.status;
      assert.equal(status.code, 0);
      assert.ok(
        await eventually(() => children.every((pid) => !isAlive(pid)), 3000),
        "a child outlived the server",
      );
    });
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await server.stop();
  }
});

Deno.test("SIGTERM drain is bounded by CODE_RUNNER_HTTP_DRAIN_GRACE_MS: a longer run is stopped", async () => {
  const server = await startHttp({ CODE_RUNNER_HTTP_TOKEN: TOKEN, CODE_RUNNER_HTTP_DRAIN_GRACE_MS: "1000" });
  assert.ok(server.url, `no URL in: ${server.text}`);
  const url = server.url as string;
  const client = await connect(url);
  try {
    await py(client, "import time");
    const endless = py(client, "time.sleep(600)", 600_000).then(() => "answered", () => "failed");
    assert.ok(
      await eventuallyAsync(async () => (await scrape(url)).get("code_runner_http_requests_in_flight") === 1),
      "the run never started",
    );
    const children = childPids(server.child.pid);
    server.child.kill("SIGTERM");
    assert.equal((await server.child.status).code, 0);
    assert.ok(
      await eventually(() => children.every((pid) => !isAlive(pid)), 3000),
      "a child outlived the server",
    );
    await client.close().catch(() => {});
    assert.equal(await endless, "failed");
  } finally {
    await client.close().catch(() => {});
    await server.stop();
  }
});
