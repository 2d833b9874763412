/**
 * The MCP side of a running server: one MCP server per session over a shared {@linkcode Runtime}.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import { SetLevelRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { join } from "node:path";
import type { Config } from "./config.ts";
import { DEFAULT_CLIENT_LOG_LEVEL, isAtLeast } from "./log.ts";
import type { PythonSession } from "./python/session.ts";
import { createRuntime, type Runtime } from "./runtime.ts";
import { KeptOutputs } from "./outputs.ts";
import { createServer } from "./server.ts";
import { RunTasks } from "./tasks.ts";
import type { TaskFinished } from "./tools/tool.ts";

/** One MCP session: its server and its Python interpreter. */
export interface AppSession {
  server: McpServer;
  python: PythonSession;
  /** Ends the session: its interpreter is killed and its server closed. */
  close(): Promise<void>;
}

/** A built server and the runtime it serves from. */
export interface App {
  readonly runtime: Runtime;
  /** The default (stdio) session. */
  readonly session: AppSession;
  /**
   * A new MCP session (its own server and Python state) sharing this app's runners and caches;
   * `onTaskFinished` hears of the runs of its task-augmented calls (for metrics).
   */
  newSession(hooks?: { onTaskFinished?: TaskFinished }): AppSession;
  /** Kills every child and removes every temp directory; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Builds the server from a validated configuration, or around a runtime already started.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * import { LineTransport } from "./stdio_transport.ts";
 * async function example() {
 *   const app = await createApp(loadConfig(Deno.env.toObject()));
 *   try {
 *     await app.session.server.connect(new LineTransport());
 *   } finally {
 *     await app.close();
 *   }
 * }
 * ```
 */
export async function createApp(
  config: Config,
  serverEnv: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
  options: { warm?: boolean; runtime?: Runtime } = {},
): Promise<App> {
  const runtime = options.runtime ?? await createRuntime(config, serverEnv, options);
  const { javascript, logger } = runtime;
  // Security: inside the runs root, which runs are denied wherever a grant would reach it (only -A opts out),
  // so no run can read another session's kept output or plant one.
  const kept = await KeptOutputs.create(join(runtime.runsRoot, "outputs"), {
    perRunBytes: config.outputKeepMb * 1024 * 1024,
    totalBytes: config.outputKeepTotalMb * 1024 * 1024,
    keepMs: config.outputKeepMs,
  });
  const liveTasks = new Set<RunTasks>();
  const session = (python: PythonSession, onTaskFinished?: TaskFinished): AppSession => {
    const outputs = kept.session();
    const tasks = new RunTasks({ maxLive: config.maxTasksPerSession, maxTtlMs: config.taskMaxTtlMs });
    liveTasks.add(tasks);
    const server = createServer({
      config,
      javascript,
      python,
      outputs,
      tasks,
      mcpServers: runtime.codeMode?.servers ?? [],
      ...(onTaskFinished ? { onTaskFinished } : {}),
    });
    // Diagnostics reach this session's client at the level it set, `info` until it sets one. (The SDK's
    // own filter keys levels by HTTP session id, which these messages do not carry.)
    let minimum: string = DEFAULT_CLIENT_LOG_LEVEL;
    server.server.setRequestHandler(SetLevelRequestSchema, (request) => {
      minimum = request.params.level;
      return {};
    });
    const removeSink = logger.addSink((level, data) => {
      if (server.isConnected() && isAtLeast(level, minimum)) {
        server.sendLoggingMessage({ level, logger: "code-runner-mcp", data }).catch(() => {});
      }
    });
    return {
      server,
      python,
      close: async () => {
        removeSink();
        // The session's tasks end with it: their runs are stopped, their results and kept output dropped.
        liveTasks.delete(tasks);
        const ending = tasks.close();
        await python.close();
        await ending;
        outputs.close();
        await server.close().catch(() => {});
      },
    };
  };
  const first = session(runtime.python);
  // The first extra session (over HTTP the first client) gets the interpreter that is already warm.
  let handedOver = false;
  let closing: Promise<void> | undefined;
  return {
    runtime,
    session: first,
    newSession: (hooks) => {
      if (handedOver) return session(runtime.newPython(), hooks?.onTaskFinished);
      handedOver = true;
      return session(runtime.python, hooks?.onTaskFinished);
    },
    close() {
      closing ??= (async () => {
        const ending = Promise.all([...liveTasks].map((tasks) => tasks.close()));
        await runtime.close();
        await ending;
        await kept.close();
        await first.server.close().catch(() => {});
      })();
      return closing;
    },
  };
}
