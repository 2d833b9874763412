/**
 * The `run_javascript` tool: its arguments, description and annotations.
 *
 * @module
 */
import { describePermissions } from "../permissions.ts";
import { runResultSchema } from "../result.ts";
import type { Config } from "../config.ts";
import { codeArgument, runHandlers, timeoutArgument, type ToolRegistration } from "./tool.ts";

/** Registers `run_javascript`. */
export const registerRunJavascript: ToolRegistration = (server, deps) => {
  const { config, javascript } = deps;
  server.experimental.tasks.registerToolTask(
    "run_javascript",
    {
      title: "Run JavaScript / TypeScript",
      description: javascriptDescription(config, deps.mcpServers),
      inputSchema: {
        code: codeArgument(config).describe(
          "A JavaScript or TypeScript ES module. Top-level await works. Print results with console.log.",
        ),
        timeout_ms: timeoutArgument(config),
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
      // A client may run a long call as a task (tools/call with `task`) instead of waiting for it.
      execution: { taskSupport: "optional" },
    },
    runHandlers(
      deps,
      "run_javascript",
      ({ code, timeout_ms }: { code: string; timeout_ms?: number | undefined }, options) =>
        javascript.run({ code, timeoutMs: timeout_ms ?? config.timeoutMs }, options),
    ),
  );
};

/** The description: teaches a model what it can do under the current configuration. */
export function javascriptDescription(config: Config, mcpServers: readonly string[] = []): string {
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
    "files as text, others as binary resources (inline up to 20 files, 4 MiB in all" +
    (config.outputKeepMb > 0 ? "; larger ones are kept as linked resources)." : ")."),
    ...(config.workspace
      ? [
        `A shared workspace directory is at ${config.workspace.path} (${
          config.workspace.writable ? "read-write" : "read-only"
        }); files there persist across runs.`,
      ]
      : []),
    `Limits: ${config.timeoutMs} ms by default (timeout_ms up to ${config.maxTimeoutMs}), ` +
    `${config.memoryLimitMb} MiB of memory, ${config.outputLimitBytes} bytes each of stdout and stderr ` +
    "inline (more is cut in the middle: the start and the end are shown" +
    (config.outputKeepMb > 0
      ? ", and the whole stream is kept as a resource the result links to; read it with resources/read, a " +
        "part with ?offset=N&length=N)."
      : ")."),
    "Clients with MCP tasks may run a long call as a task and poll it instead of waiting.",
    ...(mcpServers.length
      ? [
        `The operator's MCP tools are callable from code (${mcpServers.join(", ")}): ` +
        "`await mcp.servers.<server>.<tool>({...})` returns the tool's result; `await mcp.list()` lists the " +
        "tools with their input schemas. Call them in a loop and print only what you need.",
      ]
      : []),
  ].join("\n");
}
