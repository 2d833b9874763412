/**
 * Code mode's server side against real upstreams: the notes fixture over stdio, and this project's own bin
 * over Streamable HTTP.
 */
import assert from "node:assert/strict";
import { Logger } from "../../src/log.ts";
import { type RunUpstreams, type ToolCallOutput, UpstreamError, Upstreams } from "../../src/upstreams.ts";
import { parseUpstreamsConfig } from "../../src/upstreams_config.ts";
import { childPids, eventually, isAlive } from "../_helpers.ts";
import { scrape, startHttp, TOKEN } from "../_http.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIXTURE = new URL("../fixtures/notes_server.ts", import.meta.url).pathname;
/** The secret in the fixture's environment; it must never come back in an error or a log line. */
const CANARY = `canary-${crypto.randomUUID()}`;

/** How the fixture is configured, as an operator would write it. */
function notesServer(extra: { args?: string[]; tools?: string[] } = {}): Record<string, unknown> {
  const env: Record<string, string> = { CANARY, NO_COLOR: "1" };
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.DENO_DIR = denoDir;
  return {
    command: Deno.execPath(),
    args: ["run", "--allow-env", "--config", `${ROOT}deno.json`, FIXTURE, ...(extra.args ?? [])],
    env,
    cwd: ROOT,
    ...(extra.tools ? { tools: extra.tools } : {}),
  };
}

interface Harness {
  upstreams: Upstreams;
  /** Every line logged so far. */
  logs: string[];
  /** A run view with generous limits (or the given ones). */
  run(
    options?: { maxCalls?: number; maxResultBytes?: number; ms?: number; signal?: AbortSignal },
  ): RunUpstreams;
}

async function withUpstreams(servers: Record<string, unknown>, test: (h: Harness) => Promise<void>) {
  const logger = new Logger();
  const logs: string[] = [];
  logger.addSink((level, message) => logs.push(`${level}: ${message}`));
  const upstreams = new Upstreams(parseUpstreamsConfig(JSON.stringify({ mcpServers: servers })), {
    logger,
    connectTimeoutMs: 60_000,
  });
  try {
    await test({
      upstreams,
      logs,
      run: (options = {}) =>
        upstreams.forRun({
          signal: options.signal ?? new AbortController().signal,
          maxCalls: options.maxCalls ?? 1000,
          maxResultBytes: options.maxResultBytes ?? 10_000_000,
          deadline: Date.now() + (options.ms ?? 60_000),
        }),
    });
  } finally {
    await upstreams.close();
  }
  for (const line of logs) assert.ok(!line.includes(CANARY), `the canary was logged: ${line}`);
}

/** Awaits `promise`, which must reject with an UpstreamError of `code`; returns the error. */
async function failure(promise: Promise<unknown>, code: string): Promise<UpstreamError> {
  const error = await promise.then(
    (value) => assert.fail(`expected ${code}, got ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
  assert.ok(error instanceof UpstreamError, `not an UpstreamError: ${error}`);
  assert.equal(error.code, code, error.message);
  assert.ok(!error.message.includes(CANARY), `the canary is in an error: ${error.message}`);
  return error;
}

function whoami(output: ToolCallOutput): { pid: number; envNames: string[] } {
  return output.structured as { pid: number; envNames: string[] };
}

Deno.test("Upstreams lists each upstream's allowed tools with their schemas", async () => {
  await withUpstreams(
    { notes: notesServer(), limited: notesServer({ tools: ["search", "add"] }) },
    async (h) => {
      const listed = await h.run().list();
      assert.deepEqual(listed.map((server) => server.name), ["notes", "limited"]);
      const [notes, limited] = listed;
      assert.ok(notes && limited);
      assert.ok(
        ["add", "search", "fail", "hang", "crash", "whoami"].every((name) =>
          notes.tools.some((tool) => tool.name === name)
        ),
      );
      assert.deepEqual(
        limited.tools.map((tool) => tool.name).sort(),
        ["add", "search"],
      );
      const search = limited.tools.find((tool) => tool.name === "search");
      assert.equal(search?.description, "Finds notes whose title or body contains the query.");
      assert.deepEqual(Object.keys(search?.inputSchema.properties as object), ["query"]);
      assert.ok(search?.outputSchema);
      assert.ok(h.logs.some((line) => /^info: upstream notes: connected \(pid \d+\)$/.test(line)));
    },
  );
});

Deno.test("Upstreams calls tools: structured content, text, and an isError result as a value", async () => {
  await withUpstreams({ notes: notesServer() }, async (h) => {
    const run = h.run();
    const added = await run.call("notes", "add", { title: "deno", body: "a runtime" });
    assert.equal(added.text, "added note 1");
    assert.equal(added.structured, undefined);
    assert.equal(added.isError, false);
    await run.call("notes", "add", { title: "python", body: "a language" });
    const found = await run.call("notes", "search", { query: "runtime" });
    assert.deepEqual(found.structured, {
      query: "runtime",
      notes: [{ id: 1, title: "deno", body: "a runtime" }],
    });
    assert.deepEqual(JSON.parse(found.text), found.structured);
    assert.equal(found.raw.content.length, 1);
    const failed = await run.call("notes", "fail", {});
    assert.deepEqual([failed.isError, failed.text], [true, "the notes database is locked"]);
    assert.equal(run.calls, 4);
    // Every call is logged with its names, status and sizes, never its argument values.
    const lines = h.logs.filter((line) => line.startsWith("info: mcp call "));
    assert.equal(lines.length, 4);
    assert.match(lines[0] ?? "", /^info: mcp call notes\.add: ok in \d+ ms, arguments \d+ B, result \d+ B$/);
    assert.match(lines[3] ?? "", /^info: mcp call notes\.fail: tool error in /);
    assert.ok(!h.logs.some((line) => line.includes("a runtime")));
  });
});

Deno.test("Upstreams refuses unknown servers, unlisted tools and tools outside the allow-list", async () => {
  await withUpstreams({ limited: notesServer({ tools: ["search", "whoami"] }) }, async (h) => {
    const run = h.run();
    const notAllowed = await failure(run.call("limited", "crash", {}), "tool_not_allowed");
    assert.match(notAllowed.message, /"crash" of MCP server "limited" is not allowed/);
    // Security: the allow-list is checked before the upstream is started.
    assert.ok(!h.logs.some((line) => line.includes("connected")));
    const unknown = await failure(run.call("github", "search", {}), "unknown_server");
    assert.match(unknown.message, /no MCP server named "github" is configured; the servers are limited/);
    await failure(run.call("limited", "whoami\n", {}), "tool_not_found");
    await failure(run.call("limited", "search", [] as unknown), "bad_request");
    await withUpstreams({ notes: notesServer() }, async (h2) => {
      const missing = await failure(h2.run().call("notes", "delete_all", {}), "tool_not_found");
      assert.match(missing.message, /has no tool "delete_all"/);
    });
    assert.equal(run.calls, 3);
  });
});

Deno.test("a hung call times out at the deadline, the upstream is told, and the next call works", async () => {
  await withUpstreams({ notes: notesServer() }, async (h) => {
    await h.run().call("notes", "add", { title: "before", body: "" });
    const timedOut = await failure(h.run({ ms: 300 }).call("notes", "hang", {}), "timeout");
    assert.match(timedOut.message, /did not finish before the deadline/);
    assert.ok(h.logs.some((line) => line.startsWith("info: mcp call notes.hang: timeout in ")));
    // notifications/cancelled reached the upstream's handler.
    let cancellations = 0;
    for (let i = 0; i < 200 && cancellations === 0; i++) {
      const stats = await h.run().call("notes", "stats", {});
      cancellations = (stats.structured as { cancellations: number }).cancellations;
      if (!cancellations) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(cancellations, 1);
    const found = await h.run().call("notes", "search", { query: "before" });
    assert.equal(
      (found.structured as { notes: unknown[] }).notes.length,
      1,
      "the same upstream process answers",
    );
  });
});

Deno.test("aborting the run's signal cancels its call in flight and every later call", async () => {
  await withUpstreams({ notes: notesServer() }, async (h) => {
    const controller = new AbortController();
    const run = h.run({ signal: controller.signal });
    const { pid } = whoami(await run.call("notes", "whoami", {}));
    const hanging = run.call("notes", "hang", {});
    setTimeout(() => controller.abort(), 100);
    const cancelled = await failure(hanging, "cancelled");
    assert.match(cancelled.message, /cancelled with the run/);
    await failure(run.call("notes", "whoami", {}), "cancelled");
    await failure(run.list(), "cancelled");
    // The upstream lives on for other runs.
    assert.equal(whoami(await h.run().call("notes", "whoami", {})).pid, pid);
  });
});

Deno.test("an upstream that crashes mid-call gives a clear error and is restarted by the next call", async () => {
  await withUpstreams({ notes: notesServer() }, async (h) => {
    const run = h.run();
    const first = whoami(await run.call("notes", "whoami", {})).pid;
    const crashed = await failure(run.call("notes", "crash", {}), "crashed");
    assert.match(
      crashed.message,
      /MCP server "notes" exited during notes\.crash; the next call starts it again/,
    );
    assert.ok(await eventually(() => !isAlive(first)));
    const second = whoami(await run.call("notes", "whoami", {})).pid;
    assert.notEqual(second, first);
    assert.ok(
      h.logs.some((line) =>
        line === `warning: upstream notes: process ${first} exited; the next call starts it again`
      ),
    );
  });
});

Deno.test("a result that is not a valid CallToolResult is a clear error, and the next call works", async () => {
  await withUpstreams({ notes: notesServer() }, async (h) => {
    const run = h.run();
    const garbage = await failure(run.call("notes", "garbage", {}), "invalid_result");
    assert.match(garbage.message, /answered notes\.garbage with something that is not a valid MCP result/);
    assert.equal((await run.call("notes", "add", { title: "t", body: "b" })).text, "added note 1");
  });
});

Deno.test("a run's calls stop at its call limit and its result-bytes limit", async () => {
  await withUpstreams({ notes: notesServer() }, async (h) => {
    const counted = h.run({ maxCalls: 2 });
    await counted.call("notes", "echo", { text: "a" });
    await counted.call("notes", "fail", {});
    const tooMany = await failure(counted.call("notes", "echo", { text: "b" }), "limit_exceeded");
    assert.match(tooMany.message, /limit of 2 MCP tool calls/);
    // Other runs have their own counts.
    await h.run({ maxCalls: 1 }).call("notes", "echo", { text: "c" });

    const small = h.run({ maxResultBytes: 10_000 });
    const first = await small.call("notes", "echo", { text: "x", times: 4000 });
    assert.equal(first.text.length, 4000);
    const tooBig = await failure(small.call("notes", "echo", { text: "y", times: 8000 }), "limit_exceeded");
    assert.match(tooBig.message, /would take this run past its limit of 10000 bytes/);
    await failure(small.call("notes", "echo", { text: "z" }), "limit_exceeded");
  });
});

Deno.test("calls of two runs at once each get their own results", async () => {
  await withUpstreams({ notes: notesServer() }, async (h) => {
    const [a, b] = [h.run(), h.run()];
    const calls = Array.from({ length: 20 }, (_, i) => {
      const run = i % 2 ? b : a;
      return run.call("notes", "echo", { text: `${i % 2 ? "b" : "a"}${i}`, times: 1 + i });
    });
    const outputs = await Promise.all(calls);
    outputs.forEach((output, i) => assert.equal(output.text, `${i % 2 ? "b" : "a"}${i}`.repeat(1 + i)));
    assert.deepEqual([a.calls, b.calls], [10, 10]);
  });
});

Deno.test("the canary in an upstream's environment never appears in errors or logs", async (t) => {
  await t.step("a JSON-RPC error that holds it is redacted", async () => {
    await withUpstreams({ notes: notesServer() }, async (h) => {
      const run = h.run();
      // The secret did reach the upstream (by name: whoami never returns values).
      assert.ok(whoami(await run.call("notes", "whoami", {})).envNames.includes("CANARY"));
      const error = await failure(run.call("notes", "leak_error", {}), "upstream_error");
      assert.match(error.message, /notes\.leak_error failed: .*invalid token \[redacted\]/);
      assert.ok(await run.call("notes", "echo", { text: "still fine" }));
    });
  });
  await t.step("a handshake error that holds it is redacted", async () => {
    await withUpstreams({ broken: notesServer({ args: ["--fail-handshake"] }) }, async (h) => {
      const run = h.run();
      const error = await failure(run.call("broken", "search", { query: "x" }), "start_failed");
      assert.match(error.message, /MCP server "broken" failed to start: .*bad token \[redacted\]/);
      // Until the retry delay has passed, the next call fails at once with the same error.
      assert.equal(
        (await failure(run.call("broken", "search", { query: "x" }), "start_failed")).message,
        error.message,
      );
      const [listed] = await run.list();
      assert.equal(listed?.tools.length, 0);
      assert.ok(listed?.error && !listed.error.includes(CANARY));
    });
  });
  await t.step("a command that does not exist is named, without the environment", async () => {
    await withUpstreams(
      { missing: { command: "no-such-mcp-server", env: { TOKEN: CANARY } }, relative: { command: "./nope" } },
      async (h) => {
        const error = await failure(h.run().call("missing", "x", {}), "start_failed");
        assert.equal(
          error.message,
          'MCP server "missing" failed to start: its command "no-such-mcp-server" was not found in PATH',
        );
        await failure(h.run().call("relative", "x", {}), "start_failed");
      },
    );
  });
  await t.step("an HTTP upstream that echoes the credentials in its 401 is redacted", async () => {
    const echo = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) =>
        new Response(`unauthorized: ${request.headers.get("authorization")} ${new URL(request.url).search}`, {
          status: 401,
        }),
    );
    try {
      const url = `http://127.0.0.1:${echo.addr.port}/mcp?api_key=${CANARY}-q`;
      await withUpstreams(
        { remote: { url, headers: { Authorization: `Bearer ${CANARY}` } } },
        async (h) => {
          const error = await failure(h.run().call("remote", "x", {}), "start_failed");
          assert.match(error.message, /failed to start: .*401.*unauthorized: \[redacted\]/);
          assert.ok(!error.message.includes(`${CANARY}-q`));
        },
      );
    } finally {
      await echo.shutdown();
    }
  });
});

Deno.test("RunUpstreams.handle answers channel messages, and malformed ones without trusting them", async () => {
  await withUpstreams({ notes: notesServer({ tools: ["echo"] }) }, async (h) => {
    const run = h.run();
    const listed = await run.handle({ type: "mcp_list", id: 1 });
    assert.equal(listed?.ok, true);
    assert.deepEqual(
      listed?.ok && (listed.value as Array<{ tools: Array<{ name: string }> }>)[0]?.tools.map((t) => t.name),
      ["echo"],
    );
    const called = await run.handle(
      '{"type":"mcp_call","id":2,"server":"notes","tool":"echo","args":{"text":"hi"}}',
    );
    assert.ok(called?.ok);
    assert.equal(called.id, 2);
    assert.equal((called.value as ToolCallOutput).text, "hi");
    const refused = await run.handle({ type: "mcp_call", id: 3, server: "notes", tool: "crash", args: {} });
    assert.deepEqual(refused?.ok === false && refused.error.code, "tool_not_allowed");
    const malformed = await run.handle({ type: "mcp_call", id: 4, server: "../etc", tool: "echo", args: {} });
    assert.deepEqual(malformed?.ok === false && [malformed.id, malformed.error.code], [4, "bad_request"]);
    assert.equal(await run.handle("not json"), null);
    assert.equal(run.calls, 2);
  });
});

Deno.test("this server as an HTTP upstream: list, calls from two runs at once, a new session after expiry", async () => {
  const http = await startHttp({ CODE_RUNNER_HTTP_TOKEN: TOKEN, CODE_RUNNER_HTTP_SESSION_IDLE_MS: "2000" });
  try {
    assert.ok(http.url, `the HTTP server did not start:\n${http.text}`);
    await withUpstreams({
      runner: { url: http.url, headers: { Authorization: `Bearer ${TOKEN}` }, tools: ["run_javascript"] },
      wrong: { url: http.url, headers: { Authorization: `Bearer ${CANARY}` } },
    }, async (h) => {
      const [runner] = await h.run().list();
      assert.deepEqual(runner?.tools.map((tool) => tool.name), ["run_javascript"]);
      const [a, b] = [h.run(), h.run()];
      const [one, two] = await Promise.all([
        a.call("runner", "run_javascript", { code: "console.log('from a')" }),
        b.call("runner", "run_javascript", { code: "console.log('from b')" }),
      ]);
      assert.equal((one?.structured as { stdout: string }).stdout, "from a\n");
      assert.equal((two?.structured as { stdout: string }).stdout, "from b\n");
      await failure(a.call("runner", "run_python", { code: "1" }), "tool_not_allowed");
      const denied = await failure(a.call("wrong", "run_javascript", { code: "1" }), "start_failed");
      assert.match(denied.message, /HTTP 401/);
      // The upstream forgets our idle session; the next call, refused with 404, is made again on a new one.
      const expired = () =>
        scrape(http.url as string).then((m) =>
          m.get('code_runner_http_sessions_total{event="expired"}') ?? 0
        );
      for (let i = 0; i < 200 && await expired() === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(await expired() > 0, "the session never expired");
      const again = await a.call("runner", "run_javascript", { code: "console.log('again')" });
      assert.equal((again.structured as { stdout: string }).stdout, "again\n");
      assert.ok(h.logs.filter((line) => line === "info: upstream runner: connected").length >= 2);
    });
  } finally {
    await http.stop();
  }
});

Deno.test("close() stops every stdio upstream and later calls fail clearly", async () => {
  const logger = new Logger();
  const config = parseUpstreamsConfig(
    JSON.stringify({ mcpServers: { one: notesServer(), two: notesServer() } }),
  );
  const upstreams = new Upstreams(config, { logger, connectTimeoutMs: 60_000 });
  const run = upstreams.forRun({
    signal: new AbortController().signal,
    maxCalls: 10,
    maxResultBytes: 1_000_000,
    deadline: Date.now() + 60_000,
  });
  let pids: number[] = [];
  try {
    pids = await Promise.all(
      ["one", "two"].map(async (name) => whoami(await run.call(name, "whoami", {})).pid),
    );
    // One call is in flight while the server closes.
    const hanging = failure(run.call("one", "hang", {}), "closed");
    await upstreams.close();
    await hanging;
    await failure(run.call("two", "whoami", {}), "closed");
  } finally {
    await upstreams.close();
  }
  assert.equal(pids.length, 2);
  for (const pid of pids) assert.ok(!isAlive(pid), `upstream ${pid} outlived close()`);
  assert.deepEqual(childPids(Deno.pid).filter((pid) => pids.includes(pid)), []);
});

Deno.test("a stdio upstream dies with a server that is killed outright", async () => {
  const config = JSON.stringify({ mcpServers: { notes: notesServer() } });
  const holder = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../fixtures/upstreams_holder.ts", import.meta.url).pathname, config],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let pid = 0;
  try {
    const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    await reader.cancel();
    pid = (JSON.parse(text) as { pid: number }).pid;
    assert.ok(isAlive(pid));
  } finally {
    holder.kill("SIGKILL");
    await holder.status;
  }
  assert.ok(await eventually(() => !isAlive(pid)), `upstream ${pid} outlived its server`);
});
