import assert from "node:assert/strict";
import { ConfigError, DEFAULTS, loadConfig } from "../../src/config.ts";

Deno.test("loadConfig() reads the HTTP deployment settings, with their defaults", () => {
  const defaults = loadConfig({});
  assert.equal(defaults.httpAllowedHosts, null);
  assert.equal(defaults.httpDrainGraceMs, DEFAULTS.httpDrainGraceMs);
  assert.equal(defaults.httpMetricsPublic, false);
  const set = loadConfig({
    CODE_RUNNER_HTTP_ALLOWED_HOSTS: "MCP.example.com, proxy.internal:8080 [::1]:8787,10.0.0.7",
    CODE_RUNNER_HTTP_DRAIN_GRACE_MS: "0",
    CODE_RUNNER_HTTP_METRICS_PUBLIC: "1",
  });
  assert.deepEqual(set.httpAllowedHosts, [
    "mcp.example.com",
    "proxy.internal:8080",
    "[::1]:8787",
    "10.0.0.7",
  ]);
  assert.equal(set.httpDrainGraceMs, 0);
  assert.equal(set.httpMetricsPublic, true);
});

Deno.test("loadConfig() refuses HTTP deployment settings it cannot use, naming the variable", async (t) => {
  const table: Array<[Record<string, string>, RegExp]> = [
    [
      { CODE_RUNNER_HTTP_ALLOWED_HOSTS: "https://mcp.example.com" },
      /CODE_RUNNER_HTTP_ALLOWED_HOSTS.*no scheme/,
    ],
    [{ CODE_RUNNER_HTTP_ALLOWED_HOSTS: "mcp.example.com/mcp" }, /CODE_RUNNER_HTTP_ALLOWED_HOSTS/],
    [{ CODE_RUNNER_HTTP_ALLOWED_HOSTS: "*" }, /CODE_RUNNER_HTTP_ALLOWED_HOSTS/],
    [{ CODE_RUNNER_HTTP_ALLOWED_HOSTS: "host:port" }, /CODE_RUNNER_HTTP_ALLOWED_HOSTS/],
    [{ CODE_RUNNER_HTTP_DRAIN_GRACE_MS: "-1" }, /CODE_RUNNER_HTTP_DRAIN_GRACE_MS/],
    [{ CODE_RUNNER_HTTP_DRAIN_GRACE_MS: "soon" }, /CODE_RUNNER_HTTP_DRAIN_GRACE_MS/],
    [{ CODE_RUNNER_HTTP_METRICS_PUBLIC: "yes" }, /CODE_RUNNER_HTTP_METRICS_PUBLIC must be 1 or 0/],
  ];
  for (const [env, message] of table) {
    await t.step(JSON.stringify(env), () => {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
      );
    });
  }
});
