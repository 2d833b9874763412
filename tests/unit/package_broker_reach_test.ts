/**
 * When Pyodide's distribution cannot be reached, the broker says so in words an operator can act on, and does
 * not ask it again for every file (each try could hang until a timeout), while cached files still serve.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PackageBroker } from "../../src/python/package_broker.ts";
import { sha256Hex } from "../../src/sha256.ts";

/** A loopback server that closes every connection before answering, counting them. */
function closingServer(): { port: number; connections(): number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let count = 0;
  (async () => {
    for await (const conn of listener) {
      count++;
      conn.close();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    connections: () => count,
    close: () => listener.close(),
  };
}

Deno.test("PackageBroker remembers that the distribution cannot be reached", async (t) => {
  // A server that closes every connection before answering: as unreachable as a dead host, but countable.
  const canary = closingServer();
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-broker-" });
  const cached = new TextEncoder().encode("a cached wheel");
  const cachedSha = await sha256Hex(cached);
  const broker = new PackageBroker({
    cacheDir,
    sources: { pyodideBaseUrl: `http://127.0.0.1:${canary.port}/pyodide/`, indexUrls: [] },
    distributionHashes: () =>
      Promise.resolve(
        new Map([["a-1.0-py3-none-any.whl", "a".repeat(64)], ["b-1.0-py3-none-any.whl", cachedSha]]),
      ),
  });
  const url = (name: string) => `http://127.0.0.1:${canary.port}/pyodide/${name}`;
  try {
    assert.equal(broker.distributionUnreachable, null, "nothing is known before the first try");

    await t.step("the first failure says what to configure", async () => {
      await assert.rejects(
        broker.fetch(url("a-1.0-py3-none-any.whl")),
        /distribution at http:\/\/127\.0\.0\.1:\d+\/pyodide\/ cannot be reached .*CODE_RUNNER_PYODIDE_PACKAGES_URL/,
      );
      assert.match(broker.distributionUnreachable ?? "", /cannot be reached/);
    });

    await t.step("later files fail without asking the distribution again", async () => {
      const before = canary.connections();
      assert.ok(before >= 1);
      await assert.rejects(broker.fetch(url("a-1.0-py3-none-any.whl")), /cannot be reached/);
      assert.equal(canary.connections(), before);
    });

    await t.step("a file already in the cache is still served", async () => {
      await Deno.mkdir(join(cacheDir, "files"), { recursive: true });
      await Deno.writeFile(join(cacheDir, "files", cachedSha), cached);
      const response = await broker.fetch(url("b-1.0-py3-none-any.whl"));
      assert.deepEqual(await Deno.readFile(response.path), cached);
    });
  } finally {
    canary.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});
