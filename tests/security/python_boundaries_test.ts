/**
 * run_python's network grant and session isolation; the attack suite (attack_suite_test.ts) covers the
 * host-reaching attacks through js, pyodide_js, run_js and proxy constructors under three profiles.
 */
import assert from "node:assert/strict";
import { connectionCanary, startServer } from "../_helpers.ts";

Deno.test("run_python's network follows the operator's --allow-net, and sessions share nothing", async () => {
  const canary = connectionCanary();
  const first = await startServer({ DENO_PERMISSION_ARGS: `--allow-net=127.0.0.1:${canary.port}` });
  const second = await startServer();
  try {
    const allowed = await first.py(
      `import js\ntry:\n    await js.fetch("http://127.0.0.1:${canary.port}/")\nexcept Exception:\n    pass\n"tried"`,
    );
    assert.equal(allowed.result.result, "'tried'");
    assert.equal(canary.connections(), 1, "the granted host was reachable");
    const { tools } = await first.client.listTools();
    assert.match(
      tools.find((tool) => tool.name === "run_python")?.description ?? "",
      /network: 127\.0\.0\.1/,
    );
    const other = await first.py(`import js\nawait js.fetch("http://127.0.0.2:${canary.port}/")`);
    assert.equal(other.isError, true);
    assert.match(other.result.stderr, /NotCapable|Requires net access/);

    await first.py(
      "import js\nshared_secret = 'first session only'\njs.localStorage.setItem('shared', 'first')",
    );
    const peek = await second.py(
      "import js\n('shared_secret' in globals(), js.localStorage.getItem('shared'))",
    );
    assert.equal(peek.result.result, "(False, jsnull)");
  } finally {
    await first.close();
    await second.close();
    canary.close();
  }
});
