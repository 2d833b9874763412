/**
 * Streamable HTTP: the bin with --http, driven by the SDK's StreamableHTTPClientTransport.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import { CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import assert from "node:assert/strict";
import { childPids, toolOutput } from "../_helpers.ts";
import { connect, initializeBody, py, rawHttp, scrape, startHttp, TOKEN } from "../_http.ts";

Deno.test("Streamable HTTP: sessions, authentication, expiry and limits", async (t) => {
  const server = await startHttp({
    CODE_RUNNER_HTTP_TOKEN: TOKEN,
    CODE_RUNNER_HTTP_SESSION_IDLE_MS: "6000",
    CODE_RUNNER_HTTP_MAX_SESSIONS: "2",
  });
  assert.ok(server.url, `no URL in: ${server.text}`);
  const url = server.url as string;
  const clients: Client[] = [];
  try {
    await t.step("two sessions run at once and never see each other's state", async () => {
      const [a, b] = await Promise.all([connect(url), connect(url)]);
      clients.push(a, b);
      await Promise.all([py(a, "who = 'a'"), py(b, "who = 'b'")]);
      const [fromA, fromB] = await Promise.all([py(a, "who"), py(b, "who")]);
      assert.equal(fromA.result.result, "'a'");
      assert.equal(fromB.result.result, "'b'");
      const js = toolOutput(
        await a.callTool({ name: "run_javascript", arguments: { code: "console.log(2 + 2)" } }),
      );
      assert.equal(js.result.stdout, "4\n");
    });

    await t.step("at the cap the least recently used idle session makes room, and is told so", async () => {
      const [a, b] = clients as [Client, Client];
      // `a` ran JavaScript last, so `b` is the least recently used.
      const c = await connect(url);
      clients.push(c);
      const evicted = await py(b, "who").then(() => null, (e: Error) => e);
      assert.ok(evicted, "the least recently used session still answered");
      assert.match(evicted.message, /make room/);
      assert.equal((await py(a, "who")).result.result, "'a'");
    });

    await t.step("when every session is busy a new one is refused, and /readyz says it is full", async () => {
      const [a, , c] = clients as [Client, Client, Client];
      const busy = [py(a, "import time\ntime.sleep(4)"), py(c, "import time\ntime.sleep(4)")];
      await new Promise((resolve) => setTimeout(resolve, 500));
      await assert.rejects(connect(url), /all busy|503/);
      const ready = await fetch(new URL("/readyz", url));
      assert.equal(ready.status, 503);
      assert.ok((await ready.json()).reasons.includes("session cap reached"));
      await Promise.all(busy);
    });

    await t.step("a request without the token gets 401", async () => {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      assert.equal(response.status, 401);
      assert.match(response.headers.get("www-authenticate") ?? "", /Bearer/);
      await response.body?.cancel();
      await assert.rejects(connect(url, "wrong-token-0123456789abcdef"), /401|Unauthorized/);
    });

    await t.step("a request from another origin (DNS rebinding) is refused", async () => {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: `Bearer ${TOKEN}`,
          origin: "http://evil.example",
        },
        body: "{}",
      });
      assert.equal(response.status, 403);
      await response.body?.cancel();
    });

    await t.step("an idle session expires and says so", async () => {
      await new Promise((resolve) => setTimeout(resolve, 12_500));
      const error = await py(clients[0] as Client, "who").then(() => null, (e: Error) => e);
      assert.ok(error, "the expired session still answered");
      assert.match(error.message, /expired/);
      const fresh = await connect(url);
      clients.push(fresh);
      assert.equal((await py(fresh, "'who' in globals()")).result.result, "False");
    });
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await server.stop();
  }
});

Deno.test("Streamable HTTP refuses to listen beyond loopback without a token", async () => {
  const server = await startHttp({}, ["--host", "0.0.0.0"]);
  try {
    assert.equal(server.url, undefined);
    assert.equal((await server.child.status).code, 1);
    assert.match(server.text, /without a token/);
  } finally {
    await server.stop();
  }
});

Deno.test("Streamable HTTP: with a token any Host name reaches it; without one only loopback and listed names", async (t) => {
  const withToken = await startHttp({ CODE_RUNNER_HTTP_TOKEN: TOKEN });
  const loopback = await startHttp({ CODE_RUNNER_HTTP_ALLOWED_HOSTS: "proxy.internal:8080,Other.Example" });
  try {
    assert.ok(withToken.url && loopback.url, `not started: ${withToken.text} ${loopback.text}`);
    const accept = "application/json, text/event-stream";
    const init = JSON.stringify(initializeBody());
    await t.step(
      "a token server initializes a session for Host build-box (the README's example)",
      async () => {
        const { status, text } = await rawHttp(withToken.port, {
          headers: {
            host: `build-box:${withToken.port}`,
            authorization: `Bearer ${TOKEN}`,
            "content-type": "application/json",
            accept,
          },
          body: init,
        });
        assert.equal(status, 200, text);
        assert.match(text, /mcp-session-id: [0-9a-f-]{36}/i);
      },
    );
    await t.step("a token server behind a proxy takes the proxy's Host and Origin", async () => {
      const { status, text } = await rawHttp(withToken.port, {
        method: "GET",
        headers: {
          host: "code-runner.example.com",
          origin: "https://code-runner.example.com",
          authorization: `Bearer ${TOKEN}`,
          accept,
        },
      });
      // Past the Host, Origin and token checks: refused only for having no session.
      assert.equal(status, 400, text);
      assert.match(text, /no mcp-session-id/);
    });
    await t.step("a token-less loopback server refuses other names (DNS rebinding)", async () => {
      for (
        const [host, origin, expected] of [
          [`build-box:${loopback.port}`, null, 403],
          [`evil.example:${loopback.port}`, null, 403],
          [`127.0.0.1:${loopback.port}`, "http://evil.example", 403],
          ["localhost:1", null, 403],
          ["proxy.internal:9999", null, 403],
          [`localhost:${loopback.port}`, null, 400],
          [`[::1]:${loopback.port}`, `http://localhost:${loopback.port}`, 400],
          ["proxy.internal:8080", "http://proxy.internal:8080", 400],
          ["other.example:1234", null, 400],
        ] as const
      ) {
        const { status, text } = await rawHttp(loopback.port, {
          method: "GET",
          headers: { host, ...(origin ? { origin } : {}), accept },
        });
        assert.equal(status, expected, `Host ${host} Origin ${origin}: ${text}`);
      }
    });
  } finally {
    await Promise.all([withToken.stop(), loopback.stop()]);
  }
});

Deno.test("Streamable HTTP: body caps, rejected initializes start no interpreter, probes and metrics", async (t) => {
  const server = await startHttp({ CODE_RUNNER_HTTP_TOKEN: TOKEN, CODE_RUNNER_HTTP_MAX_SESSIONS: "3" });
  assert.ok(server.url, `no URL in: ${server.text}`);
  const url = server.url as string;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const headers = {
    ...auth,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  const clients: Client[] = [];
  const pythonProcesses = async () => (await scrape(url)).get('code_runner_child_processes{kind="python"}');
  try {
    await t.step("/healthz and /readyz answer without the token; /metrics needs it", async () => {
      const health = await fetch(new URL("/healthz", url));
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: "ok" });
      const ready = await fetch(new URL("/readyz", url));
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { ready: true, reasons: [] });
      const metrics = await fetch(new URL("/metrics", url));
      assert.equal(metrics.status, 401);
      await metrics.body?.cancel();
    });

    await t.step("bodies over the cap get 413 before they are read, in and out of sessions", async () => {
      const big = () =>
        new ReadableStream<Uint8Array>({
          start(controller) {
            const chunk = new Uint8Array(1024 * 1024).fill(0x20);
            for (let i = 0; i < 6; i++) controller.enqueue(chunk);
            controller.close();
          },
        });
      // Declared too large: refused on the header alone.
      const declared = await rawHttp(server.port, {
        headers: { ...headers, host: `127.0.0.1:${server.port}`, "content-length": String(6 * 1024 * 1024) },
      });
      assert.equal(declared.status, 413, declared.text);
      // Streamed without a length: cut off at the cap.
      const streamed = await fetch(url, { method: "POST", headers, body: big() });
      assert.equal(streamed.status, 413);
      assert.match((await streamed.json()).error.message, /Payload Too Large/);
      const client = await connect(url);
      clients.push(client);
      const sessionId = (client.transport as { sessionId?: string }).sessionId as string;
      const inSession = await fetch(url, {
        method: "POST",
        headers: { ...headers, "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25" },
        body: big(),
      });
      assert.equal(inSession.status, 413);
      await inSession.body?.cancel();
      assert.equal((await py(client, "1 + 1")).result.result, "2");
    });

    await t.step("initializes the transport would refuse start no Python interpreter", async () => {
      const before = await pythonProcesses();
      const init = JSON.stringify(initializeBody());
      for (let i = 0; i < 5; i++) {
        const refused = await Promise.all([
          fetch(url, { method: "POST", headers: { ...headers, accept: "application/json" }, body: init }),
          fetch(url, { method: "POST", headers: { ...headers, "content-type": "text/plain" }, body: init }),
          fetch(url, {
            method: "POST",
            headers,
            body: JSON.stringify([initializeBody(1), initializeBody(2)]),
          }),
          fetch(url, { method: "POST", headers, body: "{not json" }),
        ]);
        assert.deepEqual(refused.map((r) => r.status), [406, 415, 400, 400]);
        await Promise.all(refused.map((r) => r.body?.cancel()));
      }
      // An interpreter would be starting by now; none is.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(await pythonProcesses(), before);
      assert.equal((await scrape(url)).get("code_runner_http_sessions_open"), 1);
    });

    await t.step(
      "/metrics counts runs by tool and status, with durations, sessions and processes",
      async () => {
        const before = await scrape(url);
        const client = clients[0] as Client;
        await py(client, "x = 41");
        assert.equal((await py(client, "x + 1")).result.result, "42");
        const failed = await py(client, "1 / 0");
        assert.equal(failed.result.status, "error");
        const js = toolOutput(
          await client.callTool({ name: "run_javascript", arguments: { code: "console.log(1)" } }),
        );
        assert.equal(js.result.status, "ok");
        const invalid = await client.callTool({ name: "run_python", arguments: { code: 42 } });
        assert.equal(invalid.isError, true);
        // A run started as a task is counted when it ends, whether or not its result is ever fetched.
        const { task } = await client.request(
          {
            method: "tools/call",
            params: { name: "run_javascript", arguments: { code: "Deno.exit(3)" }, task: {} },
          },
          CreateTaskResultSchema,
        );
        while ((await client.experimental.tasks.getTask(task.taskId)).status === "working") {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const after = await scrape(url);
        const moved = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
        assert.equal(moved('code_runner_runs_total{tool="run_python",status="ok"}'), 2);
        assert.equal(moved('code_runner_runs_total{tool="run_python",status="error"}'), 1);
        assert.equal(moved('code_runner_runs_total{tool="run_python",status="invalid"}'), 1);
        assert.equal(moved('code_runner_runs_total{tool="run_javascript",status="ok"}'), 1);
        assert.equal(moved('code_runner_runs_total{tool="run_javascript",status="error"}'), 1);
        assert.equal(moved('code_runner_run_duration_seconds_count{tool="run_python"}'), 4);
        assert.equal(moved('code_runner_run_duration_seconds_bucket{tool="run_javascript",le="+Inf"}'), 2);
        assert.equal(after.get("code_runner_http_sessions_open"), 1);
        assert.equal(after.get("code_runner_http_requests_in_flight"), 0);
        assert.ok((after.get('code_runner_child_processes{kind="python"}') ?? 0) >= 1);
        assert.ok((after.get("code_runner_package_cache_bytes") ?? 0) > 0);
        assert.equal(after.get('code_runner_http_sessions_total{event="created"}'), 1);
        const reset = await client.callTool({ name: "run_python", arguments: { code: "1", reset: true } });
        assert.equal(toolOutput(reset).result.stateReset, true);
        assert.equal((await scrape(url)).get("code_runner_python_restarts_total"), 1);
      },
    );
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await server.stop();
  }
});

Deno.test("clients that never close cost no Python process until they run Python, and never lock others out", async () => {
  // The Inspector CLI and the conformance runner never send DELETE; 24 of them in a row, default settings.
  const server = await startHttp({});
  const url = server.url as string;
  const clients: Client[] = [];
  try {
    for (let i = 0; i < 24; i++) {
      const client = await connect(url);
      clients.push(client);
      const { tools } = await client.listTools();
      assert.equal(tools.length, 2);
      const js = toolOutput(
        await client.callTool({ name: "run_javascript", arguments: { code: `console.log(${i})` } }),
      );
      assert.equal(js.result.stdout, `${i}\n`);
    }
    // The interpreter started with the server, and at most one kept ready: nothing per session.
    assert.ok(
      pythonProcesses(server.child.pid) <= 2,
      `${pythonProcesses(server.child.pid)} Python processes`,
    );
    const last = clients.at(-1) as Client;
    assert.equal((await py(last, "6 * 7")).result.result, "42");
    assert.ok(
      pythonProcesses(server.child.pid) <= 2,
      `${pythonProcesses(server.child.pid)} Python processes`,
    );
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await server.stop();
  }
});

Deno.test("Python processes are capped across sessions; a reclaimed session is told its state is gone", async () => {
  const server = await startHttp({ CODE_RUNNER_MAX_PYTHON_PROCESSES: "2" });
  const url = server.url as string;
  const clients: Client[] = [];
  try {
    for (const name of ["a", "b", "c"]) {
      const client = await connect(url);
      clients.push(client);
      await py(client, `who = '${name}'`);
      assert.ok(
        pythonProcesses(server.child.pid) <= 2,
        `${pythonProcesses(server.child.pid)} Python processes`,
      );
    }
    // `a` was the least recently used when `c` needed an interpreter.
    const again = await py(clients[0] as Client, "'who' in globals()");
    assert.equal(again.result.result, "False");
    assert.equal(again.result.stateReset, true);
    assert.match(again.result.message ?? "", /fresh interpreter/);
    assert.equal((await py(clients[2] as Client, "who")).result.result, "'c'");
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await server.stop();
  }
});

/** The Python host processes of server `pid`. */
function pythonProcesses(pid: number): number {
  return childPids(pid).filter((child) => {
    try {
      return Deno.readTextFileSync(`/proc/${child}/cmdline`).includes("/pyodide/");
    } catch {
      return false;
    }
  }).length;
}
