import assert from "node:assert/strict";
import { McpConfigError, parseUpstreamsConfig, readUpstreamsConfig } from "../../src/upstreams_config.ts";

Deno.test("parseUpstreamsConfig() reads stdio and HTTP servers in the MCP client shape", () => {
  const config = parseUpstreamsConfig(JSON.stringify({
    globalShortcut: "ignored: other keys of a client's file",
    mcpServers: {
      github: {
        command: "npx",
        args: ["-y", "@modelcontextprotocol/server-github"],
        env: { GITHUB_TOKEN: "ghp_secret" },
        tools: ["search_issues", "get_issue", "search_issues"],
      },
      search: {
        type: "http",
        url: "https://mcp.example.com/mcp",
        headers: { Authorization: "Bearer t0ken" },
      },
      local: { type: "stdio", command: "/opt/local-server", cwd: "/srv" },
      off: { command: "never-started", disabled: true },
    },
  }));
  assert.deepEqual([...config.servers.keys()], ["github", "search", "local"]);
  assert.deepEqual(config.servers.get("github"), {
    transport: "stdio",
    command: "npx",
    args: ["-y", "@modelcontextprotocol/server-github"],
    env: { GITHUB_TOKEN: "ghp_secret" },
    cwd: null,
    tools: ["search_issues", "get_issue"],
  });
  assert.deepEqual(config.servers.get("search"), {
    transport: "http",
    url: "https://mcp.example.com/mcp",
    headers: { Authorization: "Bearer t0ken" },
    tools: null,
  });
  assert.deepEqual(config.servers.get("local"), {
    transport: "stdio",
    command: "/opt/local-server",
    args: [],
    env: {},
    cwd: "/srv",
    tools: null,
  });
  assert.equal(parseUpstreamsConfig('{"mcpServers": {}}').servers.size, 0);
});

Deno.test("parseUpstreamsConfig() refuses what it cannot use, saying where", async (t) => {
  const table: Array<[string, unknown, RegExp]> = [
    ["not JSON", "{", /is not valid JSON/],
    ["no mcpServers", { servers: {} }, /"mcpServers" object/],
    ["a name runs cannot use", { mcpServers: { "my.server": { command: "x" } } }, /server name "my\.server"/],
    ["a reserved name", { mcpServers: { constructor: { command: "x" } } }, /not be __proto__, constructor/],
    ["neither command nor url", { mcpServers: { a: { args: [] } } }, /needs either "command".*neither/],
    ["both command and url", { mcpServers: { a: { command: "x", url: "http://h/" } } }, /not both/],
    [
      "an SSE server",
      { mcpServers: { a: { type: "sse", url: "http://h/sse" } } },
      /SSE transport is not supported/,
    ],
    ["a type that contradicts", { mcpServers: { a: { type: "http", command: "x" } } }, /does not match/],
    ["an unknown key", { mcpServers: { a: { command: "x", header: {} } } }, /unknown key "header".*accepts/],
    [
      "headers on a stdio server",
      { mcpServers: { a: { command: "x", headers: {} } } },
      /unknown key "headers"/,
    ],
    ["an empty command", { mcpServers: { a: { command: " " } } }, /command must be a non-empty string/],
    [
      "args not strings",
      { mcpServers: { a: { command: "x", args: [1] } } },
      /args must be an array of strings/,
    ],
    ["a relative cwd", { mcpServers: { a: { command: "x", cwd: "srv" } } }, /cwd must be an absolute path/],
    ["a file URL", { mcpServers: { a: { url: "file:///etc/passwd" } } }, /url must be an http\(s\) URL/],
    [
      "a bad env name",
      { mcpServers: { a: { command: "x", env: { "A-B": "1" } } } },
      /"A-B" is not a valid variable/,
    ],
    [
      "an env value not a string",
      { mcpServers: { a: { command: "x", env: { A: 1 } } } },
      /env\.A must be a string/,
    ],
    [
      "a two-line header",
      { mcpServers: { a: { url: "http://h/", headers: { X: "a\r\nB: c" } } } },
      /one line/,
    ],
    ["an empty allow-list", { mcpServers: { a: { command: "x", tools: [] } } }, /allows no tool/],
    ["a bad tool name", { mcpServers: { a: { command: "x", tools: ["two words"] } } }, /array of tool names/],
    ["disabled not a boolean", { mcpServers: { a: { command: "x", disabled: "yes" } } }, /disabled must be/],
  ];
  for (const [name, input, pattern] of table) {
    await t.step(name, () => {
      assert.throws(
        () => parseUpstreamsConfig(typeof input === "string" ? input : JSON.stringify(input), "test.json"),
        (error: unknown) => {
          assert.ok(error instanceof McpConfigError);
          assert.match(error.message, pattern);
          assert.match(error.message, /^test\.json/);
          return true;
        },
      );
    });
  }
});

Deno.test("parseUpstreamsConfig() never quotes a secret value in its errors", () => {
  const secret = "sk-live-0123456789";
  for (
    const server of [
      { command: "x", env: { TOKEN: secret, OTHER: 5 } },
      { url: "http://h/", headers: { Authorization: secret, "X-Bad": ["list"] } },
    ]
  ) {
    assert.throws(
      () => parseUpstreamsConfig(JSON.stringify({ mcpServers: { a: server } })),
      (error: unknown) => {
        assert.ok(error instanceof McpConfigError);
        assert.ok(!error.message.includes(secret), error.message);
        return true;
      },
    );
  }
});

Deno.test("parseUpstreamsConfig() keeps a key named __proto__ an ordinary key", () => {
  const config = parseUpstreamsConfig('{"mcpServers": {"a": {"command": "x", "env": {"__proto__": "v"}}}}');
  const server = config.servers.get("a");
  assert.ok(server?.transport === "stdio");
  assert.deepEqual(Object.entries(server.env), [["__proto__", "v"]]);
});

Deno.test("readUpstreamsConfig() names the variable when the file cannot be read", () => {
  assert.throws(() => readUpstreamsConfig("/nonexistent/mcp.json"), /CODE_RUNNER_MCP_CONFIG cannot be read/);
});
