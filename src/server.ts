/**
 * MCP wiring only: the tools, their schemas, descriptions and annotations.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Config } from "./config.ts";
import { describePermissions } from "./permissions.ts";
import { runResultSchema, toToolResult } from "./result.ts";
import type { JavaScriptRunner } from "./javascript/runner.ts";
import type { PythonSession } from "./python/session.ts";
import { PYODIDE_VERSION } from "./python/distribution.ts";
import { VERSION } from "./version.ts";

/** What the server's tools run on. */
export interface ServerDeps {
  config: Config;
  javascript: JavaScriptRunner;
  python: PythonSession;
}

/**
 * Creates the MCP server with its tools registered; connect it to a transport to serve.
 *
 * @example
 * ```ts
 * const server = createServer({ config, javascript });
 * await server.connect(new StdioServerTransport());
 * ```
 */
export function createServer(deps: ServerDeps): McpServer {
  const { config } = deps;
  const server = new McpServer(
    { name: "code-runner-mcp", version: VERSION },
    {
      capabilities: { logging: {} },
      instructions: "Runs code in a sandbox. Use run_javascript for JavaScript/TypeScript on Deno (a fresh " +
        "process per call) and run_python for Python (a notebook-like session whose state persists " +
        "between calls). Results come back as stdout, stderr, a status and, for Python, the last value.",
    },
  );

  const codeSchema = z.string()
    .min(1, "code is empty: pass the program to run")
    .refine((code) => new TextEncoder().encode(code).byteLength <= config.maxCodeBytes, {
      message: `code is larger than ${config.maxCodeBytes} bytes; send a smaller program`,
    });
  const timeoutSchema = z.number().int().min(1).max(config.maxTimeoutMs)
    .optional()
    .describe(`Time limit in milliseconds (default ${config.timeoutMs}, at most ${config.maxTimeoutMs}).`);

  server.registerTool(
    "run_javascript",
    {
      title: "Run JavaScript / TypeScript",
      description: javascriptDescription(config),
      inputSchema: {
        code: codeSchema.describe(
          "A JavaScript or TypeScript ES module. Top-level await works. Print results with console.log.",
        ),
        timeout_ms: timeoutSchema,
      },
      outputSchema: runResultSchema,
      annotations: {
        readOnlyHint: false,
        // Only what outlives a run can be destroyed: host files it may write, programs it may run.
        destructiveHint: config.permissions.grants.write !== "none" ||
          config.permissions.grants.run !== "none" || config.workspace?.writable === true,
        idempotentHint: false,
        openWorldHint: config.permissions.grants.net !== "none",
      },
    },
    async ({ code, timeout_ms }, extra) => {
      const progress = progressReporter(extra);
      const result = await whileReporting(
        progress,
        () => deps.javascript.run(code, { timeoutMs: timeout_ms ?? config.timeoutMs, signal: extra.signal }),
      );
      return toToolResult(result);
    },
  );
  server.registerTool(
    "run_python",
    {
      title: "Run Python",
      description: pythonDescription(config),
      inputSchema: {
        code: codeSchema.describe(
          "Python source. Top-level await works. The value of the last expression is returned, like a notebook cell.",
        ),
        packages: z.array(z.string().min(1).max(200)).max(64).optional().describe(
          'Extra packages to install first, as PyPI requirement strings (e.g. "humanize>=4"). Imports are ' +
            "detected and installed automatically; PEP 723 `# /// script` metadata is honoured too.",
        ),
        timeout_ms: timeoutSchema,
        reset: z.boolean().optional().describe(
          "Start from a fresh interpreter: forget all variables, imports and files of this session first.",
        ),
      },
      outputSchema: runResultSchema,
      annotations: {
        readOnlyHint: false,
        destructiveHint: config.workspace?.writable === true,
        idempotentHint: false,
        // Package installs reach the configured indexes, but the code itself reaches out only with --allow-net.
        openWorldHint: config.permissions.grants.net !== "none",
      },
    },
    async ({ code, packages, timeout_ms, reset }, extra) => {
      const progress = progressReporter(extra);
      const result = await whileReporting(progress, () =>
        deps.python.run(
          {
            code,
            packages: packages ?? [],
            timeoutMs: timeout_ms ?? config.timeoutMs,
            reset: reset ?? false,
          },
          { signal: extra.signal, ...(progress ? { onProgress: progress } : {}) },
        ));
      return toToolResult(result);
    },
  );
  return server;
}

/** How often a long run reports that it is still running, when the client asked for progress. */
const HEARTBEAT_MS = 5000;

/** The part of a request's context used for progress. */
interface ProgressContext {
  _meta?: { progressToken?: string | number };
  sendNotification(notification: {
    method: "notifications/progress";
    params: { progressToken: string | number; progress: number; message: string };
  }): Promise<void>;
}

/** A function sending MCP progress notifications, or undefined when the client sent no progressToken. */
function progressReporter(extra: ProgressContext): ((message: string) => void) | undefined {
  const progressToken = extra._meta?.progressToken;
  if (progressToken === undefined) return undefined;
  let progress = 0;
  return (message) => {
    extra.sendNotification({
      method: "notifications/progress",
      params: { progressToken, progress: ++progress, message },
    })
      .catch(() => {});
  };
}

/** Runs `work`, reporting every few seconds that it is still running. */
async function whileReporting<T>(
  report: ((message: string) => void) | undefined,
  work: () => Promise<T>,
): Promise<T> {
  if (!report) return await work();
  const started = Date.now();
  const timer = setInterval(
    () => report(`still running (${Math.round((Date.now() - started) / 1000)} s)`),
    HEARTBEAT_MS,
  );
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** The run_python description: its state model, packages and limits under the current configuration. */
export function pythonDescription(config: Config): string {
  const net = config.permissions.grants.net;
  return [
    `Run Python ${
      PYODIDE_VERSION.startsWith("314") ? "3.14 " : ""
    }(CPython on WebAssembly, Pyodide ${PYODIDE_VERSION}) ` +
    "in a sandboxed process, and get back stdout, stderr, a status and the value of the last expression.",
    "State persists between calls like a notebook: variables, imports, installed packages and files written " +
    "under the current directory stay for the next call. Pass reset: true to start fresh. If a call times out " +
    "and does not stop when interrupted, or the process crashes, the interpreter is restarted, the state is " +
    "gone, and the result says so (stateReset: true).",
    "Packages: imports are detected and installed before the code runs (Pyodide's builds such as numpy and " +
    "pandas, or pure-Python wheels from PyPI); name others in `packages` or in PEP 723 script metadata. " +
    "Installing does not count against the timeout.",
    "Rich output comes back as images and text, like a notebook: matplotlib figures (no savefig needed), and " +
    "the last value's _repr_png_, _repr_jpeg_, _repr_svg_, _repr_html_ or _repr_markdown_.",
    `The sandbox has no access to host files, environment variables or subprocesses; network: ${
      net === "none" ? "none (package installs still work)" : net === "all" ? "allowed" : net.join(", ")
    }. input() raises EOFError.`,
    ...(config.workspace
      ? [
        `A shared workspace directory is mounted at /workspace (${
          config.workspace.writable ? "read-write" : "read-only"
        }); files there persist across calls and sessions.`,
      ]
      : []),
    `Limits: ${config.timeoutMs} ms by default (timeout_ms up to ${config.maxTimeoutMs}), ` +
    `${config.pythonMemoryLimitMb} MiB of memory, ${config.outputLimitBytes} bytes each of stdout and ` +
    "stderr (more is cut and marked). Calls in a session run one at a time.",
  ].join("\n");
}

/** The tool description: teaches a model what it can do under the current configuration. */
export function javascriptDescription(config: Config): string {
  const { grants } = config.permissions;
  const imports = ["npm:package@version", "jsr:@scope/package", "node:fs and other Node built-ins"];
  if (grants.import !== "none") {
    imports.push(
      `https: URLs from ${grants.import === "all" ? "any host" : grants.import.join(", ")}`,
    );
  }
  return [
    "Run JavaScript or TypeScript (an ES module; top-level await works) in a fresh Deno sandbox process, " +
    "and get back stdout, stderr, the exit code and a status.",
    "Each call starts from nothing: no variables, files or imports survive between calls. " +
    "Print what you want to see with console.log; the value of the last expression is not returned.",
    `Imports: ${imports.join(", ")}. A package is downloaded on first use and cached.`,
    `Permissions granted by the operator: ${describePermissions(config.permissions)}. ` +
    "Anything else (files outside the working directory, network, environment variables, subprocesses) " +
    "is refused with a NotCapable error; permissions cannot be changed from code.",
    "The working directory is a fresh empty directory that the code may read and write; it is deleted " +
    "after the run. To return an image or a file, write it to ./output/ (e.g. " +
    'Deno.writeFileSync("output/chart.png", bytes)): PNG, JPEG, GIF and WebP come back as images, text ' +
    "files as text, others as binary resources (up to 20 files, 5 MiB each).",
    ...(config.workspace
      ? [
        `A shared workspace directory is at ${config.workspace.path} (${
          config.workspace.writable ? "read-write" : "read-only"
        }); files there persist across runs.`,
      ]
      : []),
    `Limits: ${config.timeoutMs} ms by default (timeout_ms up to ${config.maxTimeoutMs}), ` +
    `${config.memoryLimitMb} MiB of memory, ${config.outputLimitBytes} bytes each of stdout and stderr ` +
    "(more is cut and marked).",
  ].join("\n");
}
