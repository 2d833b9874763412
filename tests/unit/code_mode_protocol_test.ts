import assert from "node:assert/strict";
import { CODE_MODE_LIMITS, parseSandboxMcpRequest } from "../../src/code_mode_protocol.ts";

Deno.test("parseSandboxMcpRequest() accepts list and call requests, as text or parsed", () => {
  assert.deepEqual(parseSandboxMcpRequest('{"type":"mcp_list","id":0}'), { type: "mcp_list", id: 0 });
  const call = {
    type: "mcp_call",
    id: 7,
    server: "github",
    tool: "search_issues",
    args: { q: "is:open", n: [1] },
  };
  assert.deepEqual(parseSandboxMcpRequest(JSON.stringify(call)), call);
  assert.deepEqual(parseSandboxMcpRequest(call), call);
  assert.deepEqual(
    parseSandboxMcpRequest({ ...call, server: "my-server_2", tool: "ns.tool/v2" }),
    { ...call, server: "my-server_2", tool: "ns.tool/v2" },
  );
});

Deno.test("parseSandboxMcpRequest() refuses malformed requests, with the id when it has one", async (t) => {
  const deep = {
    type: "mcp_call",
    id: 3,
    server: "a",
    tool: "b",
    args: { x: JSON.parse("[".repeat(100) + "]".repeat(100)) },
  };
  const table: Array<[string, unknown, number | null, RegExp]> = [
    ["not JSON", "{", null, /not JSON/],
    [
      "too large",
      `{"type":"mcp_list","id":1,"pad":"${"x".repeat(CODE_MODE_LIMITS.maxRequestBytes)}"}`,
      null,
      /larger/,
    ],
    ["an unknown type", { type: "mcp_connect", id: 1, url: "http://evil/" }, 1, /malformed/],
    [
      "an extra field",
      { type: "mcp_call", id: 2, server: "a", tool: "b", args: {}, headers: { a: "b" } },
      2,
      /malformed/,
    ],
    ["a negative id", { type: "mcp_list", id: -1 }, null, /malformed/],
    ["a fractional id", { type: "mcp_list", id: 1.5 }, null, /malformed/],
    ["a path as server", { type: "mcp_call", id: 3, server: "../a", tool: "b", args: {} }, 3, /server/],
    ["a newline in a tool", { type: "mcp_call", id: 4, server: "a", tool: "b\nc", args: {} }, 4, /tool/],
    [
      "a long tool name",
      { type: "mcp_call", id: 5, server: "a", tool: "t".repeat(129), args: {} },
      5,
      /tool/,
    ],
    ["args an array", { type: "mcp_call", id: 6, server: "a", tool: "b", args: [1] }, 6, /args/],
    ["args missing", { type: "mcp_call", id: 7, server: "a", tool: "b" }, 7, /args/],
    ["args nested too deep", deep, 3, /nest deeper than 64/],
    [
      "a huge parsed value",
      { type: "mcp_call", id: 8, server: "a", tool: "b", args: { s: "x".repeat(2 << 20) } },
      8,
      /larger/,
    ],
  ];
  for (const [name, input, id, pattern] of table) {
    await t.step(name, () => {
      const parsed = parseSandboxMcpRequest(input);
      assert.ok(!("type" in parsed), `accepted: ${JSON.stringify(parsed).slice(0, 200)}`);
      assert.equal(parsed.id, id);
      assert.match(parsed.message, pattern);
    });
  }
});
