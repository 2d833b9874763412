import assert from "node:assert/strict";
import { ConfigError, DEFAULTS, loadConfig } from "../../src/config.ts";

Deno.test("loadConfig() uses the defaults when nothing is set", () => {
  const config = loadConfig({});
  assert.equal(config.timeoutMs, DEFAULTS.timeoutMs);
  assert.equal(config.maxTimeoutMs, DEFAULTS.maxTimeoutMs);
  assert.equal(config.memoryLimitMb, 512);
  assert.equal(config.outputLimitBytes, 65536);
  assert.deepEqual(config.permissions.flags, []);
});

Deno.test("loadConfig() reads every variable", () => {
  const config = loadConfig({
    DENO_PERMISSION_ARGS: "--allow-net",
    CODE_RUNNER_TIMEOUT_MS: "1000",
    CODE_RUNNER_MAX_TIMEOUT_MS: "2000",
    CODE_RUNNER_MEMORY_LIMIT_MB: "128",
    CODE_RUNNER_OUTPUT_LIMIT_BYTES: "100",
    CODE_RUNNER_MAX_CONCURRENCY: "3",
  });
  assert.deepEqual(
    [
      config.timeoutMs,
      config.maxTimeoutMs,
      config.memoryLimitMb,
      config.outputLimitBytes,
      config.maxConcurrency,
    ],
    [1000, 2000, 128, 100, 3],
  );
  assert.deepEqual(config.permissions.flags, ["--allow-net"]);
});

Deno.test("loadConfig() raises the maximum timeout to a larger default", () => {
  assert.equal(loadConfig({ CODE_RUNNER_TIMEOUT_MS: "600000" }).maxTimeoutMs, 600000);
});

Deno.test("loadConfig() rejects bad values with the variable's name", async (t) => {
  const table: Array<[Record<string, string>, RegExp]> = [
    [{ CODE_RUNNER_TIMEOUT_MS: "soon" }, /CODE_RUNNER_TIMEOUT_MS/],
    [{ CODE_RUNNER_TIMEOUT_MS: "0" }, /CODE_RUNNER_TIMEOUT_MS/],
    [{ CODE_RUNNER_TIMEOUT_MS: "1.5" }, /CODE_RUNNER_TIMEOUT_MS/],
    [{ CODE_RUNNER_MEMORY_LIMIT_MB: "8" }, /CODE_RUNNER_MEMORY_LIMIT_MB must be a whole number >= 64/],
    [{ CODE_RUNNER_OUTPUT_LIMIT_BYTES: "-1" }, /CODE_RUNNER_OUTPUT_LIMIT_BYTES/],
    [{ CODE_RUNNER_MAX_CONCURRENCY: "many" }, /CODE_RUNNER_MAX_CONCURRENCY/],
    [{ CODE_RUNNER_TIMEOUT_MS: "5000", CODE_RUNNER_MAX_TIMEOUT_MS: "1000" }, /below/],
    [{ DENO_PERMISSION_ARGS: "--inspect" }, /--inspect/],
  ];
  for (const [env, pattern] of table) {
    await t.step(JSON.stringify(env), () => {
      assert.throws(() => loadConfig(env), (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, pattern);
        return true;
      });
    });
  }
});

Deno.test("loadConfig() reads the workspace and HTTP settings", async () => {
  const dir = await Deno.makeTempDir();
  const tokenFile = `${dir}/token`;
  await Deno.writeTextFile(tokenFile, "a-token-of-twenty-chars\n");
  try {
    const config = loadConfig({
      CODE_RUNNER_WORKSPACE: dir,
      CODE_RUNNER_WORKSPACE_MODE: "rw",
      CODE_RUNNER_HTTP_TOKEN_FILE: tokenFile,
      CODE_RUNNER_HTTP_SESSION_IDLE_MS: "5000",
      CODE_RUNNER_HTTP_MAX_SESSIONS: "3",
    });
    assert.deepEqual(config.workspace, { path: await Deno.realPath(dir), writable: true });
    assert.equal(config.httpToken, "a-token-of-twenty-chars");
    assert.equal(config.httpSessionIdleMs, 5000);
    assert.equal(config.httpMaxSessions, 3);
    assert.equal(loadConfig({ CODE_RUNNER_WORKSPACE: dir }).workspace?.writable, false);
    assert.equal(loadConfig({}).workspace, null);
    assert.throws(() => loadConfig({ CODE_RUNNER_WORKSPACE: `${dir}/missing` }), /existing directory/);
    assert.throws(() => loadConfig({ CODE_RUNNER_WORKSPACE_MODE: "rwx" }), /ro or rw/);
    assert.throws(() => loadConfig({ CODE_RUNNER_HTTP_TOKEN: "short" }), /16 characters/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig() checks the CODE_RUNNER_MCP_CONFIG file at start and keeps only its path", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    assert.equal(loadConfig({}).mcpConfigPath, null);
    await Deno.writeTextFile(
      file,
      '{"mcpServers": {"notes": {"command": "notes", "env": {"TOKEN": "s3cret-v"}}}}',
    );
    const config = loadConfig({ CODE_RUNNER_MCP_CONFIG: file });
    assert.equal(config.mcpConfigPath, file);
    // Security: the upstreams' secrets stay in the file, out of the config object that is passed around.
    assert.ok(!JSON.stringify(config).includes("s3cret-v"));
    await Deno.writeTextFile(file, '{"mcpServers": {"notes": {"url": "ftp://h/"}}}');
    assert.throws(() => loadConfig({ CODE_RUNNER_MCP_CONFIG: file }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /^CODE_RUNNER_MCP_CONFIG \(.*\): mcpServers\.notes\.url must be an http\(s\) URL$/,
      );
      return true;
    });
    assert.throws(
      () => loadConfig({ CODE_RUNNER_MCP_CONFIG: `${file}.missing` }),
      /CODE_RUNNER_MCP_CONFIG cannot be read/,
    );
  } finally {
    await Deno.remove(file);
  }
});
