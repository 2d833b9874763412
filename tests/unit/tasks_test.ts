/**
 * RunTasks behind the real McpServer and SDK Client (in memory), with a runner the test controls.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import { CallToolResultSchema, CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { KeptOutputs } from "../../src/outputs.ts";
import type { PythonRunResult } from "../../src/python/session.ts";
import { emptyResult, type RunResult } from "../../src/result.ts";
import type { RunOptions } from "../../src/runner.ts";
import { createServer } from "../../src/server.ts";
import { RunTasks } from "../../src/tasks.ts";

/** A JavaScript runner whose runs end when the test says, or when their signal aborts. */
class ControlledRunner {
  readonly started: Array<{ code: string; options: RunOptions; finish: (result: RunResult) => void }> = [];

  run(call: { code: string }, options: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve) => {
      this.started.push({ code: call.code, options, finish: resolve });
      options.onOutput?.("stdout", new TextEncoder().encode(`started ${call.code}\n`));
      options.signal?.addEventListener("abort", () => {
        resolve({
          ...emptyResult("cancelled", "Cancelled by the client; the run was killed."),
          cancelled: true,
        });
      });
    });
  }
}

async function withServer(
  body: (client: Client, runner: ControlledRunner, tasks: RunTasks) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tasks-test-" });
  const kept = await KeptOutputs.create(`${dir}/outputs`, {
    perRunBytes: 1 << 20,
    totalBytes: 1 << 20,
    keepMs: 60_000,
  });
  const runner = new ControlledRunner();
  const tasks = new RunTasks({ maxLive: 2, maxTtlMs: 60_000 });
  const server = createServer({
    config: loadConfig({}),
    javascript: runner,
    python: {
      run: () => Promise.resolve({ ...emptyResult("ok", ""), stateReset: false } as PythonRunResult),
    },
    outputs: kept.session(),
    tasks,
    mcpServers: [],
  });
  const client = new Client({ name: "tasks-test", version: "0" });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  try {
    await body(client, runner, tasks);
  } finally {
    await tasks.close();
    await client.close();
    await server.close();
    await kept.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function startTask(client: Client, code: string, ttl?: number) {
  return client.request(
    {
      method: "tools/call",
      params: { name: "run_javascript", arguments: { code }, task: ttl === undefined ? {} : { ttl } },
    },
    CreateTaskResultSchema,
  ).then((created) => created.task);
}

const ok = (stdout: string): RunResult => ({
  ...emptyResult("ok", ""),
  message: undefined,
  exitCode: 0,
  stdout,
});

Deno.test("a plain call runs in its request and leaves no task behind", async () => {
  await withServer(async (client, runner, tasks) => {
    const answer = client.callTool({ name: "run_javascript", arguments: { code: "plain" } });
    while (runner.started.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    runner.started[0]?.finish(ok("done\n"));
    const result = await answer;
    assert.equal((result.structuredContent as { stdout: string }).stdout, "done\n");
    assert.equal(result._meta, undefined, "no related-task metadata on a plain call");
    assert.deepEqual((await client.experimental.tasks.listTasks()).tasks, []);
    assert.equal(tasks.liveCount, 0);
  });
});

Deno.test("a plain call is cancelled by notifications/cancelled", async () => {
  await withServer(async (client, runner) => {
    const controller = new AbortController();
    const answer = client.callTool({ name: "run_javascript", arguments: { code: "slow" } }, undefined, {
      signal: controller.signal,
    });
    while (runner.started.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    await assert.rejects(answer);
    const signal = runner.started[0]?.options.signal;
    assert.ok(signal);
    while (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, 5));
  });
});

Deno.test("a task answers at once, completes, and returns its result", async () => {
  await withServer(async (client, runner, tasks) => {
    const task = await startTask(client, "background");
    assert.equal(task.status, "working");
    assert.equal(task.ttl, 60_000, "no TTL asked: the server's maximum");
    assert.equal(tasks.liveCount, 1);
    runner.started[0]?.finish(ok("finished\n"));
    let state = await client.experimental.tasks.getTask(task.taskId);
    while (state.status === "working") state = await client.experimental.tasks.getTask(task.taskId);
    assert.equal(state.status, "completed");
    assert.match(state.statusMessage ?? "", /^status: ok/);
    const result = await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema);
    assert.equal((result.structuredContent as { stdout: string }).stdout, "finished\n");
    // Read twice: a task's result stays until its TTL.
    await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema);
  });
});

Deno.test("tasks/cancel aborts the run, and tasks/result gives what the run reported", async () => {
  await withServer(async (client, runner) => {
    const task = await startTask(client, "to cancel", 5000);
    assert.equal(task.ttl, 5000);
    const cancelled = await client.experimental.tasks.cancelTask(task.taskId);
    assert.equal(cancelled.status, "cancelled");
    assert.equal(runner.started[0]?.options.signal?.aborted, true);
    const result = await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema);
    assert.equal((result.structuredContent as { status: string }).status, "cancelled");
    await assert.rejects(client.experimental.tasks.cancelTask(task.taskId), /terminal/);
  });
});

Deno.test("beyond the cap a task fails at once with a message saying why", async () => {
  await withServer(async (client, runner) => {
    await startTask(client, "one");
    await startTask(client, "two");
    const third = await startTask(client, "three");
    assert.equal(third.status, "failed");
    assert.match(third.statusMessage ?? "", /Too many tasks: this session already has 2 running/);
    assert.equal(runner.started.length, 2, "the refused task never ran");
    const result = await client.experimental.tasks.getTaskResult(third.taskId, CallToolResultSchema);
    assert.equal(result.isError, true);
  });
});

Deno.test("RunTasks refuses another session's id, and ends every run when closed", async () => {
  await withServer(async (client, runner, tasks) => {
    const task = await startTask(client, "long");
    const request = { method: "tools/call", params: {} };
    const mine = await tasks.createTask({ ttl: 1000 }, 1, request, "session-a");
    assert.equal(await tasks.getTask(mine.taskId, "session-b"), null);
    await assert.rejects(
      tasks.updateTaskStatus(mine.taskId, "cancelled", undefined, "session-b"),
      /not found/,
    );
    assert.ok(await tasks.getTask(mine.taskId, "session-a"));
    await tasks.close();
    assert.equal(runner.started[0]?.options.signal?.aborted, true);
    assert.equal(await tasks.getTask(task.taskId), null);
  });
});
