/**
 * Long runs as MCP tasks, end to end with the SDK client's task API: over stdio (create, poll with the latest
 * output, result equal to a plain call's, cancel, the per-session cap, TTL and expiry, Python) and over
 * Streamable HTTP (another session can neither see nor cancel a task; a session's tasks end with it).
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import { CallToolResultSchema, CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import assert from "node:assert/strict";
import { busyJsRunPids, eventually, startServer, toolOutput } from "../_helpers.ts";
import { connect, eventuallyAsync, startHttp, TOKEN } from "../_http.ts";

/** A JavaScript run that keeps a core busy and prints a numbered line every 200 ms, until killed. */
const BUSY_TICKER = "let i = 0; const start = Date.now();\n" +
  "while (true) { if (Date.now() - start >= i * 200) console.log(`tick ${i++}`); }";

/** Starts `code` as a task of `tool`; answers with the new task (the call returns before the run ends). */
async function startTask(
  client: Client,
  tool: string,
  args: Record<string, unknown>,
  ttl?: number,
) {
  const { task } = await client.request(
    {
      method: "tools/call",
      params: { name: tool, arguments: args, task: ttl === undefined ? {} : { ttl } },
    },
    CreateTaskResultSchema,
  );
  return task;
}

/** Polls a task until it is no longer working; answers with its last state. */
async function settled(client: Client, taskId: string) {
  for (;;) {
    const task = await client.experimental.tasks.getTask(taskId);
    if (task.status !== "working") return task;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A result without the wall time, which differs between two runs of the same code. */
function withoutDuration(result: unknown): unknown {
  const r = structuredClone(result) as {
    structuredContent?: { durationMs?: number };
    content?: Array<{ type: string; text?: string }>;
    _meta?: unknown;
  };
  delete r._meta;
  if (r.structuredContent) delete r.structuredContent.durationMs;
  for (const item of r.content ?? []) item.text = item.text?.replace(/\d+ ms\)/, "N ms)");
  return r;
}

Deno.test("tasks over stdio with the SDK client's task API", async (t) => {
  const server = await startServer({
    CODE_RUNNER_MAX_TASKS: "2",
    CODE_RUNNER_TASK_MAX_TTL_MS: "600000",
    CODE_RUNNER_TIMEOUT_MS: "60000",
  });
  const { client } = server;
  try {
    await t.step(
      "both tools declare optional task support, and the server the tasks capability",
      async () => {
        const { tools } = await client.listTools();
        for (const tool of tools) assert.equal(tool.execution?.taskSupport, "optional", tool.name);
        assert.ok(client.getServerCapabilities()?.tasks?.requests?.tools?.call);
      },
    );

    await t.step(
      "a task answers at once; tasks/get shows the latest lines; tasks/cancel kills it",
      async () => {
        const task = await startTask(client, "run_javascript", { code: BUSY_TICKER });
        assert.equal(task.status, "working");
        let status = "";
        assert.ok(
          await eventuallyAsync(async () => {
            status = (await client.experimental.tasks.getTask(task.taskId)).statusMessage ?? "";
            return /latest output:\n(.*\n)*tick \d+$/.test(status) && /tick (1\d|[2-9]\d)/.test(status);
          }, 20_000),
          `no latest output in the status: ${status}`,
        );
        assert.ok(busyJsRunPids(server.pid).length > 0, "the run is not running");
        const cancelled = await client.experimental.tasks.cancelTask(task.taskId);
        assert.equal(cancelled.status, "cancelled");
        assert.ok(await eventually(() => busyJsRunPids(server.pid).length === 0), "the run was not killed");
        const result = toolOutput(
          await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema),
        );
        assert.equal(result.result.status, "cancelled");
        assert.equal(result.result.cancelled, true);
        assert.match(result.result.stdout, /tick 0\n/);
        await server.assertAlive();
      },
    );

    await t.step("tasks/result returns exactly what the plain call returns", async () => {
      const code = 'console.log("out"); console.error("err"); Deno.exit(3);';
      const plain = await client.callTool({ name: "run_javascript", arguments: { code } });
      const task = await startTask(client, "run_javascript", { code });
      const done = await settled(client, task.taskId);
      // A result with isError is a failed task (MCP 2025-11-25), and its result is still there.
      assert.equal(done.status, "failed");
      assert.match(done.statusMessage ?? "", /^status: error \(exit code 3/);
      const result = await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema);
      assert.deepEqual(withoutDuration(result), withoutDuration(plain));
      const ok = await startTask(client, "run_javascript", { code: "console.log(6 * 7)" });
      assert.equal((await settled(client, ok.taskId)).status, "completed");
      const okResult = toolOutput(
        await client.experimental.tasks.getTaskResult(ok.taskId, CallToolResultSchema),
      );
      assert.equal(okResult.result.stdout, "42\n");
    });

    await t.step("callToolStream follows a task to its result", async () => {
      const seen: string[] = [];
      let final: unknown;
      for await (
        const message of client.experimental.tasks.callToolStream(
          { name: "run_javascript", arguments: { code: "console.log('streamed')" } },
          CallToolResultSchema,
          { task: {} },
        )
      ) {
        seen.push(message.type);
        if (message.type === "result") final = message.result;
      }
      assert.deepEqual([seen[0], seen.at(-1)], ["taskCreated", "result"]);
      assert.equal(toolOutput(final).result.stdout, "streamed\n");
    });

    await t.step("beyond the per-session cap a task is refused with a clear error", async () => {
      const first = await startTask(client, "run_javascript", { code: BUSY_TICKER });
      const second = await startTask(client, "run_javascript", { code: BUSY_TICKER });
      const third = await startTask(client, "run_javascript", { code: "console.log(1)" });
      try {
        assert.equal(third.status, "failed");
        assert.match(third.statusMessage ?? "", /Too many tasks.*2 running.*CODE_RUNNER_MAX_TASKS/);
        const refused = await client.experimental.tasks.getTaskResult(third.taskId, CallToolResultSchema);
        assert.equal(refused.isError, true);
        assert.match(JSON.stringify(refused.content), /Too many tasks/);
        const { tasks } = await client.experimental.tasks.listTasks();
        const ids = tasks.map((task) => task.taskId);
        for (const id of [first.taskId, second.taskId, third.taskId]) assert.ok(ids.includes(id), id);
      } finally {
        await client.experimental.tasks.cancelTask(first.taskId);
        await client.experimental.tasks.cancelTask(second.taskId);
      }
      // With both cancelled there is room again.
      const fourth = await startTask(client, "run_javascript", { code: "console.log(4)" });
      assert.equal(fourth.status, "working");
      assert.equal((await settled(client, fourth.taskId)).status, "completed");
    });

    await t.step(
      "the TTL is what the client asks, within the server's maximum; then the task is gone",
      async () => {
        const capped = await startTask(client, "run_javascript", { code: "1" }, 24 * 3600 * 1000);
        assert.equal(capped.ttl, 600000);
        const short = await startTask(client, "run_javascript", { code: "console.log('soon gone')" }, 1000);
        assert.equal(short.ttl, 1000);
        await settled(client, short.taskId);
        assert.ok(
          await eventuallyAsync(
            () => client.experimental.tasks.getTask(short.taskId).then(() => false, () => true),
            10_000,
          ),
          "the task outlived its TTL",
        );
        await assert.rejects(client.experimental.tasks.getTaskResult(short.taskId), /not found/i);
      },
    );

    await t.step("Python runs as a task in order with the session's plain calls", async () => {
      await client.callTool({ name: "run_python", arguments: { code: "counter = 1" } }, undefined, {
        timeout: 180_000,
      });
      const task = await startTask(client, "run_python", {
        code:
          "import time\nfor i in range(4):\n    print('py tick', i)\n    time.sleep(1)\ncounter += 1\ncounter",
      });
      // Queued behind the running task, this plain call sees what the task did.
      const after = toolOutput(
        await client.callTool({ name: "run_python", arguments: { code: "counter" } }, undefined, {
          timeout: 180_000,
        }),
      );
      assert.equal(after.result.result, "2");
      assert.equal((await settled(client, task.taskId)).status, "completed");
      const result = toolOutput(
        await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema),
      );
      assert.equal(result.result.result, "2");
      assert.match(result.result.stdout, /py tick 3\n$/);
    });
  } finally {
    await server.close();
  }
});

Deno.test("a running task ends when the stdio server shuts down", async () => {
  const server = await startServer();
  let pids: number[] = [];
  try {
    const task = await startTask(server.client, "run_javascript", { code: BUSY_TICKER });
    assert.equal(task.status, "working");
    assert.ok(await eventually(() => (pids = busyJsRunPids(server.pid)).length > 0, 20_000), "never ran");
  } finally {
    await server.close();
  }
  const alive = () =>
    pids.filter((pid) => {
      try {
        return !Deno.readTextFileSync(`/proc/${pid}/stat`).includes(") Z ");
      } catch {
        return false;
      }
    });
  assert.ok(
    await eventually(() => alive().length === 0, 10_000),
    `the task's process outlived the server: ${alive()}`,
  );
});

Deno.test("tasks over Streamable HTTP belong to their session", async (t) => {
  const server = await startHttp({ CODE_RUNNER_HTTP_TOKEN: TOKEN, CODE_RUNNER_TIMEOUT_MS: "60000" });
  assert.ok(server.url, `no URL in: ${server.text}`);
  const clients: Client[] = [];
  try {
    const [a, b] = await Promise.all([connect(server.url as string), connect(server.url as string)]);
    clients.push(a, b);

    await t.step("another session can neither see, read nor cancel a task", async () => {
      const task = await startTask(a, "run_javascript", { code: BUSY_TICKER });
      await assert.rejects(b.experimental.tasks.getTask(task.taskId), /not found/i);
      await assert.rejects(b.experimental.tasks.cancelTask(task.taskId), /not found/i);
      await assert.rejects(b.experimental.tasks.getTaskResult(task.taskId), /not found/i);
      const { tasks } = await b.experimental.tasks.listTasks();
      assert.ok(!tasks.some((other) => other.taskId === task.taskId));
      assert.equal((await a.experimental.tasks.getTask(task.taskId)).status, "working");
      await a.experimental.tasks.cancelTask(task.taskId);
      const result = toolOutput(await a.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema));
      assert.equal(result.result.status, "cancelled");
    });

    await t.step("a task runs to its result over HTTP", async () => {
      const task = await startTask(b, "run_javascript", { code: "console.log('over http')" });
      assert.equal((await settled(b, task.taskId)).status, "completed");
      const result = toolOutput(await b.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema));
      assert.equal(result.result.stdout, "over http\n");
    });

    await t.step("a session's running tasks end with it", async () => {
      const task = await startTask(a, "run_javascript", { code: BUSY_TICKER });
      assert.equal(task.status, "working");
      assert.ok(
        await eventually(() => busyJsRunPids(server.child.pid).length > 0, 20_000),
        "the task never ran",
      );
      // Ends the HTTP session (DELETE), as a client that is done does.
      await (a.transport as { terminateSession?: () => Promise<void> }).terminateSession?.();
      await a.close();
      clients.splice(clients.indexOf(a), 1);
      assert.ok(
        await eventually(() => busyJsRunPids(server.child.pid).length === 0, 10_000),
        "the task outlived its session",
      );
    });
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await server.stop();
  }
});
