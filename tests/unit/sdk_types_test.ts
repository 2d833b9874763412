/**
 * Proves that the MCP SDK is type-checked, not silently `any`: `deno test` checks this file, and each
 * `@ts-expect-error` below fails the check if the SDK's types went missing.
 */
import assert from "node:assert/strict";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";

Deno.test("the SDK's McpServer is typed where the server imports it", () => {
  const server = new McpServer({ name: "probe", version: "0" });
  // Never called: only the type checker looks at it.
  const misuse = () =>
    // @ts-expect-error registerTool needs a config object, not a number.
    server.registerTool("bad", 42, () => ({ content: [] }));
  assert.equal(typeof misuse, "function");
  server.registerTool("typed", { inputSchema: { n: z.number() } }, ({ n }) => {
    // @ts-expect-error n is a number, so it has no toUpperCase.
    n.toUpperCase;
    return { content: [] };
  });
});
