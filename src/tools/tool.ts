/**
 * What every tool file shares: the dependencies a tool is registered with, the arguments both tools take,
 * and the handlers that run a call (plainly, or as an MCP task), follow its output, keep what its result
 * leaves out, and turn a runner's result into an MCP tool result while reporting progress.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/experimental/tasks"
import type {
  CreateTaskRequestHandlerExtra,
  CreateTaskResult,
  GetTaskResult,
  TaskRequestHandlerExtra,
} from "@modelcontextprotocol/sdk/experimental/tasks";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { CallOutput } from "../call_output.ts";
import type { Config } from "../config.ts";
import type { JavaScriptCall } from "../javascript/runner.ts";
import type { SessionOutputs } from "../outputs.ts";
import type { PythonCall, PythonRunResult } from "../python/session.ts";
import { type RunResult, type RunToolResult, toToolResult } from "../result.ts";
import type { Runner, RunOptions } from "../runner.ts";
import type { RunTasks, TaskRun } from "../tasks.ts";

/** What the tools run on: the shared runners, and this session's kept outputs and tasks. */
export interface ToolDeps {
  config: Config;
  javascript: Runner<JavaScriptCall>;
  python: Runner<PythonCall, PythonRunResult>;
  /** Output this session's results left out, kept as resources. */
  outputs: SessionOutputs;
  /** This session's tasks (task-augmented calls). */
  tasks: RunTasks;
  /** Code mode: the upstream MCP servers runs may call (empty when none is configured). */
  mcpServers: readonly string[];
  /** A task-augmented call's run ended (its result is fetched later, in a response of its own). */
  onTaskFinished?: TaskFinished;
}

/** Told of each finished task run: the tool, its result and how long the run took. */
export type TaskFinished = (tool: string, result: RunToolResult, wallMs: number) => void;

/** A tool file's one export: registers the tool on a server. */
export type ToolRegistration = (server: McpServer, deps: ToolDeps) => void;

/** The `code` argument, with the configured size cap. */
export function codeArgument(config: Config): z.ZodString {
  return z.string()
    .min(1, "code is empty: pass the program to run")
    .refine((code) => new TextEncoder().encode(code).byteLength <= config.maxCodeBytes, {
      message: `code is larger than ${config.maxCodeBytes} bytes; send a smaller program`,
    });
}

/** The optional `timeout_ms` argument, within the configured maximum. */
export function timeoutArgument(config: Config): z.ZodOptional<z.ZodNumber> {
  return z.number().int().min(1).max(config.maxTimeoutMs)
    .optional()
    .describe(`Time limit in milliseconds (default ${config.timeoutMs}, at most ${config.maxTimeoutMs}).`);
}

/** How often a long run reports that it is still running, when the client asked for progress. */
const HEARTBEAT_MS = 5000;

/** The part of a request's context used here. */
export interface RequestContext {
  signal: AbortSignal;
  _meta?: { progressToken?: string | number };
  sendNotification(notification: {
    method: "notifications/progress";
    params: { progressToken: string | number; progress: number; message: string };
  }): Promise<void>;
}

/** The handlers of a tool that may run as a task (`execution.taskSupport: "optional"`). */
export interface RunToolHandlers<Args> {
  createTask(args: Args, extra: CreateTaskRequestHandlerExtra): Promise<CreateTaskResult>;
  getTask(args: Args, extra: TaskRequestHandlerExtra): Promise<GetTaskResult>;
  getTaskResult(args: Args, extra: TaskRequestHandlerExtra): Promise<CallToolResult>;
}

/**
 * The handlers of a run tool: a plain call runs in its request (cancelled by `notifications/cancelled`, with
 * progress when asked); a task-augmented call answers at once and runs on as a task of this session.
 * Either way the output is followed as it comes, and what the result leaves out is kept as resources.
 *
 * @example
 * ```ts
 * // @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
 * import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { z } from "zod";
 * function register(server: McpServer, deps: ToolDeps) {
 *   server.experimental.tasks.registerToolTask("run_it", {
 *     inputSchema: { code: z.string() },
 *     execution: { taskSupport: "optional" },
 *   }, runHandlers(deps, "run_it", ({ code }: { code: string }, options) =>
 *     deps.javascript.run({ code, timeoutMs: 5000 }, options)));
 * }
 * ```
 */
export function runHandlers<Args>(
  deps: ToolDeps,
  tool: string,
  run: (args: Args, options: RunOptions) => Promise<RunResult>,
): RunToolHandlers<Args> {
  return {
    createTask: (args, extra) =>
      deps.tasks.start(extra, async (task) => {
        const started = performance.now();
        const result = await runCall(deps, tool, task, extra, (options) => run(args, options));
        if (task.isTask) deps.onTaskFinished?.(tool, result, performance.now() - started);
        return result;
      }),
    getTask: (_args, extra) => extra.taskStore.getTask(extra.taskId),
    getTaskResult: async (_args, extra) =>
      (await extra.taskStore.getTaskResult(extra.taskId)) as CallToolResult,
  };
}

/** Runs one call: its output followed, what the result leaves out kept, progress for a plain call. */
async function runCall(
  deps: ToolDeps,
  tool: string,
  task: TaskRun,
  request: RequestContext,
  work: (options: RunOptions) => Promise<RunResult>,
): Promise<RunToolResult> {
  const output = new CallOutput(deps.outputs, { tool, limitBytes: deps.config.outputLimitBytes });
  task.follow(() => output.latestLines());
  const options: RunOptions = {
    signal: task.signal,
    onOutput: (stream, chunk) => output.write(stream, chunk),
  };
  try {
    // A task reports through tasks/get; progress belongs to a plain call's request.
    const result = await runForRequest(task.isTask ? { ...request, _meta: {} } : request, options, work);
    // A cancelled plain call is never answered, so nothing it kept could be read.
    if (!task.isTask && task.signal.aborted) output.discard();
    return toToolResult(output.keep(result));
  } catch (error) {
    output.discard();
    throw error;
  }
}

/**
 * Runs `work` with `options` and, when the client sent a progressToken, progress lines plus a heartbeat
 * every few seconds.
 */
export async function runForRequest(
  request: RequestContext,
  options: RunOptions,
  work: (options: RunOptions) => Promise<RunResult>,
): Promise<RunResult> {
  const report = progressReporter(request);
  if (!report) return await work(options);
  const started = Date.now();
  const timer = setInterval(
    () => report(`still running (${Math.round((Date.now() - started) / 1000)} s)`),
    HEARTBEAT_MS,
  );
  try {
    return await work({ ...options, onProgress: report });
  } finally {
    clearInterval(timer);
  }
}

/** A function sending MCP progress notifications, or undefined when the client sent no progressToken. */
function progressReporter(request: RequestContext): ((message: string) => void) | undefined {
  const progressToken = request._meta?.progressToken;
  if (progressToken === undefined) return undefined;
  let progress = 0;
  return (message) => {
    request.sendNotification({
      method: "notifications/progress",
      params: { progressToken, progress: ++progress, message },
    }).catch(() => {});
  };
}
