/**
 * The MCP server of one session: its identity, instructions, tools, the tasks they may run as, and the
 * resources their results link to. Each tool is one file in tools/, registered by one line in
 * {@linkcode TOOLS}.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ICONS } from "./icon.ts";
import { RunTasks } from "./tasks.ts";
import { registerOutputResources } from "./tools/output_resources.ts";
import { registerRunJavascript } from "./tools/run_javascript.ts";
import { registerRunPython } from "./tools/run_python.ts";
import type { ToolDeps, ToolRegistration } from "./tools/tool.ts";
import { VERSION } from "./version.ts";

export type { ToolDeps } from "./tools/tool.ts";

/** Every tool the server offers. */
const TOOLS: readonly ToolRegistration[] = [registerRunJavascript, registerRunPython];

/**
 * Creates the MCP server with its tools registered; connect it to a transport to serve.
 *
 * @example
 * ```ts
 * import type { ToolDeps } from "./tools/tool.ts";
 * // @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/stdio"
 * import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
 * async function example(deps: ToolDeps) {
 *   const server = createServer(deps);
 *   await server.connect(new StdioServerTransport());
 * }
 * ```
 */
export function createServer(deps: ToolDeps): McpServer {
  const server = new McpServer(
    { name: "code-runner-mcp", version: VERSION, icons: [...ICONS] },
    {
      capabilities: { logging: {}, tasks: RunTasks.capability },
      taskStore: deps.tasks,
      instructions: "Runs code in a sandbox. Use run_javascript for JavaScript/TypeScript on Deno (a fresh " +
        "process per call) and run_python for Python (a notebook-like session whose state persists " +
        "between calls). Results come back as stdout, stderr, a status and, for Python, the last value. " +
        "Output a result had to cut is kept as a resource the result links to (read it with resources/read, " +
        "or a part with ?offset=N&length=N); long runs may be started as tasks.",
    },
  );
  for (const register of TOOLS) register(server, deps);
  registerOutputResources(server, deps.outputs);
  return server;
}
