/**
 * A run cannot leave files behind by taking away permissions: a server that is not root (here root without
 * its capabilities, which is the same for file permissions) still removes every directory a run wrote.
 */
import assert from "node:assert/strict";
import { entriesBelow, eventually, startServer } from "../_helpers.ts";

/** Root without CAP_DAC_OVERRIDE and friends: file permissions apply to it as to any user. */
const WITHOUT_CAPABILITIES = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"];

Deno.test("directories a run locked with chmod 000 are removed all the same", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "code-runner-locked-" });
  const server = await startServer({ TMPDIR: tmp }, WITHOUT_CAPABILITIES);
  const locked = () => entriesBelow(tmp).filter((entry) => /locked/.test(entry));
  try {
    const js = await server.js(
      `Deno.mkdirSync("locked/inner", { recursive: true });\n` +
        `Deno.writeFileSync("locked/inner/data", new Uint8Array(1024 * 1024));\n` +
        `Deno.chmodSync("locked/inner", 0o000);\nDeno.chmodSync("locked", 0o000);\nconsole.log("locked");`,
    );
    assert.equal(js.result.stdout, "locked\n", js.text);
    const py = await server.py(
      "import js\njs.Deno.mkdirSync('locked/inner', recursive=True)\n" +
        "js.Deno.writeTextFileSync('locked/inner/data', 'x' * 1024)\n" +
        "js.Deno.chmodSync('locked/inner', 0)\njs.Deno.chmodSync('locked', 0)\n'locked'",
    );
    assert.equal(py.result.result, "'locked'", py.text);
    // A reset replaces the interpreter; its directory goes with it.
    await server.py("0", { reset: true });
    assert.ok(await eventually(() => locked().length === 0, 10_000), `left behind: ${locked().join(", ")}`);
    await server.assertAlive();
  } finally {
    await server.close();
  }
  try {
    assert.ok(
      await eventually(() => entriesBelow(tmp).length === 0),
      `left: ${entriesBelow(tmp).join(", ")}`,
    );
  } finally {
    await new Deno.Command("rm", { args: ["-rf", tmp] }).output();
  }
});
