/**
 * Baseline for the bench only: an unsandboxed MCP server that runs Python in an in-process Pyodide, the
 * way a server without process isolation would. Never use this to run untrusted code.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/stdio"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { loadPyodide } from "pyodide";
import { z } from "zod";
import { runResultSchema, toToolResult } from "../src/result.ts";

const pyodide = await loadPyodide({ stdout: () => {}, stderr: () => {} });
const server = new McpServer({ name: "inprocess-baseline", version: "0" });
// The same input and output schemas as the real tool, so the comparison isolates the process boundary.
server.registerTool(
  "run_python",
  { inputSchema: { code: z.string() }, outputSchema: runResultSchema },
  async ({ code }) => {
    const started = performance.now();
    const value = await pyodide.runPythonAsync(code);
    return toToolResult({
      status: "ok",
      stdout: "",
      stderr: "",
      exitCode: null,
      durationMs: Math.round(performance.now() - started),
      timedOut: false,
      cancelled: false,
      truncated: false,
      memoryExceeded: false,
      result: String(value),
    });
  },
);
await server.connect(new StdioServerTransport());
