/**
 * The MCP side of a running server: one MCP server per session over a shared {@linkcode Runtime}.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Config } from "./config.ts";
import type { JavaScriptRunner } from "./javascript/runner.ts";
import type { Logger } from "./log.ts";
import type { PythonSession } from "./python/session.ts";
import { createRuntime, type Runtime } from "./runtime.ts";
import { createServer } from "./server.ts";
import type { ProcessGroups } from "./subprocess.ts";

/** One MCP session: its server and its Python interpreter. */
export interface AppSession {
  server: McpServer;
  python: PythonSession;
  /** Ends the session: its interpreter is killed and its server closed. */
  close(): Promise<void>;
}

/** A built server and the resources it owns. */
export interface App {
  readonly config: Config;
  /** The MCP server of the default (stdio) session. */
  readonly server: McpServer;
  /** The default session's Python. */
  readonly python: PythonSession;
  readonly javascript: JavaScriptRunner;
  /** A new MCP session (its own server and Python state) sharing this app's runners and caches. */
  newSession(): AppSession;
  readonly groups: ProcessGroups;
  /** Diagnostics, to stderr and to every session's client. */
  readonly logger: Logger;
  /** The private directory holding every run's working directory. */
  readonly runsRoot: string;
  readonly denoDir: string;
  /** Kills every child and removes every temp directory; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Builds the server from a validated configuration, or around a runtime already started.
 *
 * @example
 * ```ts
 * const app = await createApp(loadConfig(Deno.env.toObject()));
 * try { await app.server.connect(transport); } finally { await app.close(); }
 * ```
 */
export async function createApp(
  config: Config,
  serverEnv: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
  options: { warm?: boolean; runtime?: Runtime } = {},
): Promise<App> {
  const runtime = options.runtime ?? await createRuntime(config, serverEnv, options);
  const { javascript, logger } = runtime;
  const session = (python: PythonSession): AppSession => {
    const server = createServer({ config, javascript, python });
    // Diagnostics reach this session's client at the level it set (the SDK filters).
    const removeSink = logger.addSink((level, data) => {
      if (server.isConnected()) {
        server.sendLoggingMessage({ level, logger: "code-runner-mcp", data }).catch(() => {});
      }
    });
    return {
      server,
      python,
      close: async () => {
        removeSink();
        runtime.forget(python);
        await python.close();
        await server.close().catch(() => {});
      },
    };
  };
  const first = session(runtime.python);
  // The first extra session (over HTTP the first client) gets the interpreter that is already warm.
  let handedOver = false;
  let closing: Promise<void> | undefined;
  return {
    config,
    server: first.server,
    python: runtime.python,
    javascript,
    newSession: () => {
      if (handedOver) return session(runtime.newPython());
      handedOver = true;
      return session(runtime.python);
    },
    groups: runtime.groups,
    logger,
    runsRoot: runtime.runsRoot,
    denoDir: runtime.denoDir,
    close() {
      closing ??= (async () => {
        await runtime.close();
        await first.server.close().catch(() => {});
      })();
      return closing;
    },
  };
}
