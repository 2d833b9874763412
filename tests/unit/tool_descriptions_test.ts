import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { javascriptDescription } from "../../src/tools/run_javascript.ts";
import { pythonDescription } from "../../src/tools/run_python.ts";

const CONFIGS: Record<string, Record<string, string>> = {
  "the defaults": {},
  "every permission and a workspace": {
    DENO_PERMISSION_ARGS: "--allow-net=api.example.com,files.example.org --allow-import=cdn.example.com " +
      "--allow-read=/data,/srv/shared --allow-write=/tmp/out --allow-env=HOME,LANG,TZ --allow-run=git",
    CODE_RUNNER_WORKSPACE: "/tmp",
    CODE_RUNNER_WORKSPACE_MODE: "rw",
  },
  "nothing kept on disk": { CODE_RUNNER_OUTPUT_KEEP_MB: "0" },
};

Deno.test("tool descriptions stay under 2,048 characters and start with what the tool does", async (t) => {
  for (const [name, env] of Object.entries(CONFIGS)) {
    await t.step(name, () => {
      const config = loadConfig(env);
      const servers = ["github", "search", "notes"];
      for (
        const description of [
          javascriptDescription(config),
          pythonDescription(config),
          javascriptDescription(config, servers),
          pythonDescription(config, servers),
        ]
      ) {
        assert.ok(description.length < 2048, `${description.length} characters:\n${description}`);
        assert.match(description, /^Run (JavaScript|Python)/);
      }
    });
  }
});

Deno.test("tool descriptions mention kept output only when the server keeps it", () => {
  const keeps = loadConfig({});
  assert.match(javascriptDescription(keeps), /kept as a resource the result links to/);
  assert.match(pythonDescription(keeps), /kept as a resource the result links to/);
  const keepsNothing = loadConfig({ CODE_RUNNER_OUTPUT_KEEP_MB: "0" });
  assert.doesNotMatch(javascriptDescription(keepsNothing), /kept as/);
  assert.doesNotMatch(pythonDescription(keepsNothing), /kept as/);
  assert.match(javascriptDescription(keeps), /the start and the end are shown/);
});

Deno.test("with upstream MCP servers configured, both descriptions say how to call and list them", () => {
  const config = loadConfig({});
  assert.doesNotMatch(javascriptDescription(config), /mcp\./);
  const js = javascriptDescription(config, ["github", "notes"]);
  assert.match(js, /\(github, notes\)/);
  assert.match(js, /mcp\.servers\.<server>\.<tool>/);
  assert.match(js, /mcp\.list\(\)/);
  assert.match(pythonDescription(config, ["notes"]), /from code_runner import mcp/);
});
