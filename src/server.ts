/**
 * The MCP server of one session: its identity, instructions and tools. Each tool is one file in tools/,
 * registered by one line in {@linkcode TOOLS}.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
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
    { name: "code-runner-mcp", version: VERSION },
    {
      capabilities: { logging: {} },
      instructions: "Runs code in a sandbox. Use run_javascript for JavaScript/TypeScript on Deno (a fresh " +
        "process per call) and run_python for Python (a notebook-like session whose state persists " +
        "between calls). Results come back as stdout, stderr, a status and, for Python, the last value.",
    },
  );
  for (const register of TOOLS) register(server, deps);
  return server;
}
