/**
 * A hundred failures of every kind in a row — timeouts, memory crashes, cancels, resets, os._exit,
 * Deno.exit — each answered, and afterwards the server's processes, open files and temp dirs are back to
 * what it held before.
 */
import assert from "node:assert/strict";
import { assertBackToBaseline, holdings } from "../_accounting.ts";
import { startServer, type ToolOutput } from "../_helpers.ts";

Deno.test("100 mixed failures leave the server as it was", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "code-runner-failures-" });
  const server = await startServer({
    TMPDIR: tmp,
    CODE_RUNNER_MEMORY_LIMIT_MB: "128",
    CODE_RUNNER_PYTHON_MEMORY_LIMIT_MB: "400",
  });
  const cancelled = async (call: (signal: AbortSignal) => Promise<ToolOutput>, afterMs: number) => {
    const controller = new AbortController();
    const pending = call(controller.signal);
    setTimeout(() => controller.abort(), afterMs);
    return await pending.then(() => "answered", () => "cancelled");
  };
  try {
    await server.py("0");
    await server.js("0");
    // A restart keeps one interpreter ready from then on: count it in the baseline.
    await server.py("0", { reset: true });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const baseline = holdings(server.pid, tmp);
    const kinds: Array<() => Promise<string>> = [
      async () => (await server.js("while (true) {}", { timeoutMs: 200 })).result.status,
      async () => (await server.js("Deno.exit(3)")).result.status,
      async () => (await server.js("const a = []; for (;;) a.push(new Array(1e6).fill(1));")).result.status,
      () => cancelled((signal) => server.js("while (true) {}", { signal }), 150),
      async () => (await server.py("while True:\n    pass", { timeoutMs: 200 })).result.status,
      async () => (await server.py("import os\nos._exit(1)")).result.status,
      async () => (await server.py("x = 1", { reset: true })).result.status,
      async () =>
        (await server.py("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))")).result
          .status,
      () => cancelled((signal) => server.py("while True:\n    pass", { signal }), 200),
      async () => (await server.js("console.log('fine')")).result.status,
    ];
    const expected = [
      "timeout",
      "error",
      "crashed",
      "cancelled",
      "timeout",
      "crashed",
      "ok",
      "crashed",
      "cancelled",
      "ok",
    ];
    const outcomes: string[] = [];
    for (let i = 0; i < 100; i++) outcomes.push(await (kinds[i % kinds.length] as () => Promise<string>)());
    const wrong = outcomes.map((outcome, i) => [i, outcome, expected[i % expected.length]])
      .filter(([, outcome, want]) => outcome !== want);
    assert.deepEqual(wrong, [], "calls with an unexpected status: [index, got, expected]");
    await server.assertAlive();
    await assertBackToBaseline(server.pid, tmp, baseline);
  } finally {
    await server.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
