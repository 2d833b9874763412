/**
 * The `run_python` tool: its arguments, description and annotations.
 *
 * @module
 */
import { z } from "zod";
import type { Config } from "../config.ts";
import { PYODIDE_VERSION } from "../python/distribution.ts";
import { runResultSchema } from "../result.ts";
import { codeArgument, runHandlers, timeoutArgument, type ToolRegistration } from "./tool.ts";

/** The arguments of a `run_python` call, as validated. */
interface PythonArgs {
  code: string;
  packages?: string[] | undefined;
  timeout_ms?: number | undefined;
  reset?: boolean | undefined;
}

/** Registers `run_python`. */
export const registerRunPython: ToolRegistration = (server, deps) => {
  const { config, python } = deps;
  server.experimental.tasks.registerToolTask(
    "run_python",
    {
      title: "Run Python",
      description: pythonDescription(config, deps.mcpServers),
      inputSchema: {
        code: codeArgument(config).describe(
          "Python source. Top-level await works. The value of the last expression is returned, like a notebook cell.",
        ),
        packages: z.array(z.string().min(1).max(200)).max(64).optional().describe(
          'Extra packages to install first, as PyPI requirement strings (e.g. "humanize>=4"). Imports are ' +
            "detected and installed automatically; PEP 723 `# /// script` metadata is honoured too.",
        ),
        timeout_ms: timeoutArgument(config),
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
      // A client may run a long call as a task (tools/call with `task`) instead of waiting for it.
      execution: { taskSupport: "optional" },
    },
    runHandlers(
      deps,
      "run_python",
      ({ code, packages, timeout_ms, reset }: PythonArgs, options) =>
        python.run({
          code,
          packages: packages ?? [],
          timeoutMs: timeout_ms ?? config.timeoutMs,
          reset: reset ?? false,
        }, options),
    ),
  );
};

/** The run_python description: its state model, packages and limits under the current configuration. */
export function pythonDescription(config: Config, mcpServers: readonly string[] = []): string {
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
    "pandas, or pure-Python wheels from PyPI); an import that cannot be installed is reported and the code " +
    "runs anyway. Name others in `packages` or in PEP 723 script metadata (these must install, or the code " +
    "does not run), or `await micropip.install(...)` in the code. Installing before the code runs does not " +
    "count against the timeout.",
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
    "stderr inline (more is cut in the middle, keeping the start and the end" +
    (config.outputKeepMb > 0 ? ", and the whole stream is kept as a resource the result links to" : "") +
    "). Calls in a session run one at a time, also as MCP tasks.",
    ...(mcpServers.length
      ? [
        `The operator's MCP tools are callable from code (${mcpServers.join(", ")}): ` +
        "`from code_runner import mcp`, then `await mcp.servers.<server>.<tool>(**args)`; `await mcp.list()` " +
        "lists the tools with their input schemas. Call them in a loop and print only what you need.",
      ]
      : []),
  ].join("\n");
}
