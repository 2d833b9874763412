/**
 * A session's tasks (MCP 2025-11-25): a tool call the client asked to run as a task answers at once, runs
 * on, and is followed with `tasks/get`, fetched with `tasks/result` and stopped with `tasks/cancel`. One
 * store per session, so another session can neither see nor cancel a task; a cap on tasks running at once;
 * a finished task is kept for a TTL the client may shorten; everything ends with the session.
 *
 * The SDK's McpServer runs a plain (not task-augmented) call of a tool with optional task support through
 * the task handler and then polls the store; {@linkcode RunTasks.start} runs such a call inside the request
 * instead, so it behaves exactly like a tool without task support (no polling delay, the request's own
 * cancellation and progress).
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/experimental/tasks"
import type {
  CreateTaskOptions,
  CreateTaskRequestHandlerExtra,
  CreateTaskResult,
  TaskStore,
} from "@modelcontextprotocol/sdk/experimental/tasks";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import {
  ErrorCode,
  McpError,
  type Request,
  type RequestId,
  type Result,
  type Task,
} from "@modelcontextprotocol/sdk/types.js";

/** Limits of a session's tasks. */
export interface TaskLimits {
  /** Tasks running (or queued) at once; one more is refused with a failed task saying why. */
  maxLive: number;
  /** Longest time a finished task is kept; a client may ask for less. */
  maxTtlMs: number;
}

/** What a run started by {@linkcode RunTasks.start} gets. */
export interface TaskRun {
  /** Aborted by `tasks/cancel`, by the end of the session, or (for a plain call) by the client's cancel. */
  signal: AbortSignal;
  /** Whether this is a task (else a plain call, answered in its request). */
  isTask: boolean;
  /** Names where a running task's latest output comes from, for its status message. */
  follow(latest: () => string): void;
}

/** The result of a tool call, as a task stores it. */
export type ToolCallResult = Result & { content: unknown[]; isError?: boolean };

/** How often clients are asked to poll. */
const POLL_INTERVAL_MS = 1000;
/** A running task's status shows its latest output once it has run this long. */
const SHOW_OUTPUT_AFTER_MS = 3000;
/** Finished tasks a session keeps at most (their results take memory); the oldest go first. */
const MAX_FINISHED = 64;
/** A plain call's result waits this long at most for the SDK to collect it. */
const PLAIN_CALL_KEEP_MS = 60_000;
/** The smallest TTL granted, so a result can be fetched at all. */
const MIN_TTL_MS = 1000;

interface Entry {
  task: Task;
  isTask: boolean;
  sessionId: string | undefined;
  controller: AbortController;
  startedAt: number;
  result?: ToolCallResult;
  /** Resolves when the run has ended and its result (if any) is stored. */
  settled: Promise<void>;
  latest?: () => string;
  expiry?: ReturnType<typeof setTimeout>;
}

const TERMINAL = new Set<Task["status"]>(["completed", "failed", "cancelled"]);

/**
 * The task store of one session.
 *
 * @example
 * ```ts
 * // @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * function example(): McpServer {
 *   const tasks = new RunTasks({ maxLive: 8, maxTtlMs: 3_600_000 });
 *   // Close `tasks` when the session ends: its runs stop and its results are dropped.
 *   return new McpServer({ name: "x", version: "0" }, {
 *     capabilities: { tasks: RunTasks.capability },
 *     taskStore: tasks,
 *   });
 * }
 * ```
 */
export class RunTasks implements TaskStore {
  /** The `tasks` server capability this store implements. */
  static readonly capability = { list: {}, cancel: {}, requests: { tools: { call: {} } } };

  readonly #entries = new Map<string, Entry>();
  #closed = false;

  constructor(readonly limits: TaskLimits) {}

  /**
   * Runs a tool call: for a task-augmented call, in the background, answering with the new task at once;
   * for a plain call, right here, answering with the finished task whose result the SDK then collects.
   */
  async start(
    extra: CreateTaskRequestHandlerExtra,
    work: (run: TaskRun) => Promise<ToolCallResult>,
  ): Promise<CreateTaskResult> {
    const requested = extra.taskRequestedTtl;
    const created = await extra.taskStore.createTask({
      ttl: Math.max(MIN_TTL_MS, Math.min(requested ?? this.limits.maxTtlMs, this.limits.maxTtlMs)),
      pollInterval: POLL_INTERVAL_MS,
    });
    const entry = this.#entries.get(created.taskId);
    if (!entry) throw new McpError(ErrorCode.InternalError, "the task was not stored");
    if (!entry.isTask) {
      try {
        entry.result = await work({ signal: extra.signal, isTask: false, follow: () => {} });
      } catch (error) {
        this.#forget(created.taskId);
        throw error;
      }
      this.#finish(entry, "completed");
      this.#expire(created.taskId, PLAIN_CALL_KEEP_MS);
      return { task: { ...entry.task } };
    }
    if (TERMINAL.has(entry.task.status)) return { task: { ...entry.task } };
    const taskId = created.taskId;
    let settle = () => {};
    entry.settled = new Promise<void>((resolve) => settle = resolve);
    (async () => {
      let result: ToolCallResult;
      try {
        result = await work({
          signal: entry.controller.signal,
          isTask: true,
          follow: (latest) => entry.latest = latest,
        });
      } catch (error) {
        result = errorResult(`The run failed in the server: ${(error as Error)?.message ?? error}`);
      }
      if (this.#entries.get(taskId) !== entry) return;
      if (entry.task.status === "working") {
        // Through the request's store, which also tells the client (notifications/tasks/status).
        await extra.taskStore.storeTaskResult(taskId, result.isError ? "failed" : "completed", result)
          .catch(() => {});
      }
      // A cancelled task still answers tasks/result with what the run reported.
      entry.result ??= result;
    })().finally(settle);
    return { task: { ...entry.task } };
  }

  /** Ends every task: runs are stopped, results dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    const running = [...this.#entries.values()];
    for (const entry of running) {
      entry.controller.abort(new Error("the session ended"));
      clearTimeout(entry.expiry);
    }
    this.#entries.clear();
    await Promise.all(running.map((entry) => entry.settled));
  }

  /** Tasks running or queued now. */
  get liveCount(): number {
    let live = 0;
    for (const entry of this.#entries.values()) if (entry.isTask && !TERMINAL.has(entry.task.status)) live++;
    return live;
  }

  // --- TaskStore, called by the SDK ---

  createTask(
    taskParams: CreateTaskOptions,
    _requestId: RequestId,
    request: Request,
    sessionId?: string,
  ): Promise<Task> {
    if (this.#closed) {
      return Promise.reject(new McpError(ErrorCode.InvalidRequest, "The session is closing."));
    }
    const isTask = (request.params as { task?: unknown } | undefined)?.task !== undefined;
    const now = new Date().toISOString();
    const task: Task = {
      taskId: crypto.randomUUID(),
      status: "working",
      ttl: taskParams.ttl ?? this.limits.maxTtlMs,
      createdAt: now,
      lastUpdatedAt: now,
      pollInterval: taskParams.pollInterval ?? POLL_INTERVAL_MS,
    };
    const entry: Entry = {
      task,
      isTask,
      sessionId,
      controller: new AbortController(),
      startedAt: Date.now(),
      settled: Promise.resolve(),
    };
    if (isTask && this.liveCount >= this.limits.maxLive) {
      // Refused as a failed task: a tool call's error here would reach the client as a schema mismatch.
      const message = `Too many tasks: this session already has ${this.limits.maxLive} running (the ` +
        "server's CODE_RUNNER_MAX_TASKS). Wait for one to finish, or cancel one with tasks/cancel, then " +
        "call again.";
      entry.result = errorResult(message);
      task.status = "failed";
      task.statusMessage = message;
    }
    this.#entries.set(task.taskId, entry);
    if (task.status === "failed") this.#expire(task.taskId, task.ttl ?? this.limits.maxTtlMs);
    if (isTask) this.#trimFinished();
    return Promise.resolve({ ...task });
  }

  getTask(taskId: string, sessionId?: string): Promise<Task | null> {
    const entry = this.#lookup(taskId, sessionId);
    if (!entry) return Promise.resolve(null);
    const task = { ...entry.task };
    if (task.status === "working") {
      const seconds = Math.floor((Date.now() - entry.startedAt) / 1000);
      const latest = Date.now() - entry.startedAt >= SHOW_OUTPUT_AFTER_MS ? entry.latest?.() : undefined;
      task.statusMessage = `running for ${seconds} s` +
        (latest ? `; latest output:\n${latest}` : latest === "" ? "; no output yet" : "");
    }
    return Promise.resolve(task);
  }

  storeTaskResult(
    taskId: string,
    status: "completed" | "failed",
    result: Result,
    sessionId?: string,
  ): Promise<void> {
    const entry = this.#lookup(taskId, sessionId);
    if (!entry) return Promise.reject(new McpError(ErrorCode.InvalidParams, `Task not found: ${taskId}`));
    if (TERMINAL.has(entry.task.status)) {
      return Promise.reject(
        new McpError(ErrorCode.InvalidParams, `Task ${taskId} already ended (${entry.task.status})`),
      );
    }
    entry.result = result as ToolCallResult;
    this.#finish(entry, status);
    this.#expire(taskId, entry.task.ttl ?? this.limits.maxTtlMs);
    return Promise.resolve();
  }

  async getTaskResult(taskId: string, sessionId?: string): Promise<Result> {
    const entry = this.#lookup(taskId, sessionId);
    if (!entry) throw new McpError(ErrorCode.InvalidParams, `Task not found: ${taskId}`);
    // A cancelled run reports shortly after it is stopped.
    if (!entry.result && TERMINAL.has(entry.task.status)) await entry.settled;
    if (!entry.result) throw new McpError(ErrorCode.InvalidParams, `Task ${taskId} has no result yet`);
    if (!entry.isTask) this.#forget(taskId);
    return entry.result;
  }

  updateTaskStatus(
    taskId: string,
    status: Task["status"],
    statusMessage?: string,
    sessionId?: string,
  ): Promise<void> {
    const entry = this.#lookup(taskId, sessionId);
    if (!entry) return Promise.reject(new McpError(ErrorCode.InvalidParams, `Task not found: ${taskId}`));
    if (TERMINAL.has(entry.task.status)) {
      return Promise.reject(
        new McpError(ErrorCode.InvalidParams, `Task ${taskId} already ended (${entry.task.status})`),
      );
    }
    entry.task.status = status;
    if (statusMessage) entry.task.statusMessage = statusMessage;
    entry.task.lastUpdatedAt = new Date().toISOString();
    if (status === "cancelled") {
      // Stops the run the way notifications/cancelled stops a plain call.
      entry.controller.abort(new Error("cancelled by the client"));
    }
    if (TERMINAL.has(status)) this.#expire(taskId, entry.task.ttl ?? this.limits.maxTtlMs);
    return Promise.resolve();
  }

  listTasks(cursor?: string, sessionId?: string): Promise<{ tasks: Task[]; nextCursor?: string }> {
    const ids = [...this.#entries.keys()].filter((id) => this.#lookup(id, sessionId)?.isTask);
    let start = 0;
    if (cursor) {
      start = ids.indexOf(cursor) + 1;
      if (start === 0) {
        return Promise.reject(new McpError(ErrorCode.InvalidParams, `Invalid cursor: ${cursor}`));
      }
    }
    const page = ids.slice(start, start + 50);
    return Promise.all(page.map((id) => this.getTask(id, sessionId))).then((tasks) => ({
      tasks: tasks.filter((task): task is Task => task !== null),
      ...(start + 50 < ids.length ? { nextCursor: page.at(-1) as string } : {}),
    }));
  }

  // --- internals ---

  /** A task of this session, or undefined (never another session's). */
  #lookup(taskId: string, sessionId: string | undefined): Entry | undefined {
    const entry = this.#entries.get(taskId);
    // Security: each session has its own store; a session id that does not match is refused as well.
    if (entry && sessionId !== undefined && entry.sessionId !== undefined && entry.sessionId !== sessionId) {
      return undefined;
    }
    return entry;
  }

  #finish(entry: Entry, status: "completed" | "failed"): void {
    entry.task.status = status;
    entry.task.lastUpdatedAt = new Date().toISOString();
    const text = (entry.result?.content[0] as { text?: unknown } | undefined)?.text;
    // The result's status line, e.g. "status: error (exit code 1, 40 ms)".
    if (typeof text === "string") entry.task.statusMessage = text.split("\n")[0];
  }

  #expire(taskId: string, afterMs: number): void {
    const entry = this.#entries.get(taskId);
    if (!entry) return;
    clearTimeout(entry.expiry);
    entry.expiry = setTimeout(() => this.#forget(taskId), afterMs);
  }

  #forget(taskId: string): void {
    const entry = this.#entries.get(taskId);
    if (!entry) return;
    clearTimeout(entry.expiry);
    this.#entries.delete(taskId);
  }

  /** Drops the oldest finished tasks beyond {@linkcode MAX_FINISHED}. */
  #trimFinished(): void {
    const finished = [...this.#entries].filter(([, e]) => e.isTask && TERMINAL.has(e.task.status));
    for (const [id] of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED))) this.#forget(id);
  }
}

/** A tool result saying what went wrong. */
function errorResult(text: string): ToolCallResult {
  return { content: [{ type: "text", text }], isError: true };
}
