/**
 * Results within the documented caps never break the client: what a run returns is measured as it will be
 * sent (base64, UTF-8 and JSON escapes included), and what does not fit inline is linked, never a message
 * the SDK client refuses (its stdio reader closes the connection past 10 MiB, and the server with it).
 */
import assert from "node:assert/strict";
import { startServer } from "../_helpers.ts";

Deno.test("big attachments near the caps come back linked, and the session keeps going", async (t) => {
  const server = await startServer();
  try {
    await server.py("kept = 'state'");
    const cases: Array<[string, string]> = [
      [
        "two text files just under 5 MiB",
        `for (const n of [1, 2]) Deno.writeTextFileSync("output/t" + n + ".txt", "x".repeat(5 * 1024 * 1024 - 4));`,
      ],
      [
        "two 5 MiB PNGs (13.3 MiB once base64-encoded)",
        `const png = new Uint8Array(5 * 1024 * 1024); png.set([137, 80, 78, 71, 13, 10, 26, 10]);\n` +
        `for (const n of [1, 2]) Deno.writeFileSync("output/i" + n + ".png", png);`,
      ],
      [
        "5 MiB of 0xFF bytes named .txt (each byte becomes three as text)",
        `Deno.writeFileSync("output/ff.txt", new Uint8Array(5 * 1024 * 1024).fill(255));`,
      ],
      [
        "a file of exactly 5 MiB",
        `Deno.writeFileSync("output/exact.bin", new Uint8Array(5 * 1024 * 1024).fill(7));`,
      ],
    ];
    for (const [name, code] of cases) {
      await t.step(name, async () => {
        const { result, text } = await server.js(code);
        assert.equal(result.status, "ok", text);
        const kept = (result as { keptOutputs?: unknown[] }).keptOutputs ?? [];
        assert.ok(kept.length >= 1, `nothing was linked: ${text.slice(0, 300)}`);
      });
    }
    await t.step("a Python PNG and HTML repr near their caps", async () => {
      const { result, text } = await server.py(
        "class Big:\n    def _repr_png_(self):\n        return b'\\x89PNG\\r\\n\\x1a\\n' + bytes(5 * 1024 * 1024)\n" +
          "    def _repr_html_(self):\n        return '<p>' + '\\u00e9' * (3 * 1024 * 1024) + '</p>'\nBig()",
      );
      assert.notEqual(result.status, "crashed", text);
      assert.equal(result.stateReset, false);
    });
    assert.equal((await server.py("kept")).result.result, "'state'", "the session survived");
    await server.assertAlive();
  } finally {
    await server.close();
  }
});
