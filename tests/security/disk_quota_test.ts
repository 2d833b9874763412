/**
 * A run cannot fill the host's disk: a JavaScript run and a Python session each have a disk quota for their
 * private directory (and web storage); a run over it is killed, reported, and its files are removed.
 */
import assert from "node:assert/strict";
import { entriesBelow, eventually, startServer } from "../_helpers.ts";

Deno.test("disk quotas stop runs that fill their directory, and free what they wrote", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "code-runner-quota-" });
  const server = await startServer({ TMPDIR: tmp, CODE_RUNNER_DISK_LIMIT_MB: "24" });
  try {
    await server.js("0");
    await server.py("0");

    await t.step("a JavaScript run writing many files past the quota is killed and reported", async () => {
      const { result, isError, text } = await server.js(
        `const chunk = new Uint8Array(1024 * 1024);\n` +
          `for (let i = 0; ; i++) Deno.writeFileSync("part-" + i, chunk);`,
      );
      assert.equal(isError, true);
      assert.equal(result.status, "crashed", text);
      assert.equal(result.diskExceeded, true, text);
      assert.match(result.message ?? "", /24 MiB/);
      assert.match(text, /disk/i);
    });

    await t.step("one file growing past the quota is stopped too", async () => {
      const { result, text } = await server.js(
        `const f = Deno.openSync("big", { write: true, create: true });\n` +
          `const chunk = new Uint8Array(4 * 1024 * 1024);\nfor (;;) f.writeSync(chunk);`,
      );
      assert.equal(result.status, "crashed", text);
      assert.equal(result.diskExceeded, true, text);
    });

    await t.step("web storage counts against the quota", async () => {
      const { result, text } = await server.js(
        `const cache = await caches.open("c");\nconst body = new Uint8Array(2 * 1024 * 1024);\n` +
          `for (let i = 0; ; i++) await cache.put("https://x.invalid/" + i, new Response(body));`,
        { timeoutMs: 60_000 },
      );
      assert.equal(result.status, "crashed", text);
      assert.equal(result.diskExceeded, true, text);
    });

    await t.step("writing under the quota is fine", async () => {
      const { result, text } = await server.js(
        `Deno.writeFileSync("ok", new Uint8Array(8 * 1024 * 1024)); console.log(Deno.statSync("ok").size);`,
      );
      assert.equal(result.status, "ok", text);
      assert.equal(result.stdout, `${8 * 1024 * 1024}\n`);
    });

    await t.step(
      "Python writing through js.Deno is bounded the same way, and the session recovers",
      async () => {
        await server.py("kept = 1");
        const { result, text } = await server.py(
          "import js\nfrom pyodide.ffi import to_js\nchunk = to_js(bytes(1024 * 1024))\n" +
            "i = 0\nwhile True:\n    js.Deno.writeFileSync(f'part-{i}', chunk)\n    i += 1",
        );
        assert.equal(result.status, "crashed", text);
        assert.equal(result.diskExceeded, true, text);
        assert.equal(result.stateReset, true);
        const after = await server.py("'kept' in globals(), 6 * 7");
        assert.equal(after.result.result, "(False, 42)");
      },
    );

    await t.step("what the killed runs wrote is gone", async () => {
      const written = () => entriesBelow(tmp).filter((entry) => /\/(part-\d+|big|ok)$/.test(entry));
      assert.ok(await eventually(() => written().length === 0), `left behind: ${written().join(", ")}`);
    });
    await server.assertAlive();
  } finally {
    await server.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
