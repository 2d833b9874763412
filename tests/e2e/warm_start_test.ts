/**
 * The speed machinery's failure paths: the Python memory snapshot and the pool of waiting launchers.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { childPids, eventually, jsRunPids, startServer } from "../_helpers.ts";

function snapshotFiles(cacheDir: string): { bin: string; manifest: string } {
  const dir = join(cacheDir, "snapshots");
  const names = [...Deno.readDirSync(dir)].map((entry) => entry.name);
  const bin = names.find((name) => name.endsWith(".bin"));
  const manifest = names.find((name) => name.endsWith(".json"));
  assert.ok(bin && manifest, `snapshot files: ${names}`);
  return { bin: join(dir, bin), manifest: join(dir, manifest) };
}

async function sha256(path: string): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("the Python snapshot is built once, checked before use, and rebuilt when corrupt", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-snapshot-" });
  const env = { CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir };
  try {
    const first = await startServer(env);
    assert.equal((await first.py("print('built')")).result.stdout, "built\n");
    await first.close();
    const { bin, manifest } = snapshotFiles(cacheDir);
    const recorded = JSON.parse(await Deno.readTextFile(manifest)) as { sha256: string };
    assert.equal(await sha256(bin), recorded.sha256, "the manifest records the snapshot's hash");

    // Same size, different bytes: only the hash can tell.
    const size = (await Deno.stat(bin)).size;
    await Deno.writeFile(bin, new Uint8Array(size).fill(0x5a));
    const second = await startServer(env);
    try {
      const { result, text } = await second.py("x = 6 * 7\nx");
      assert.equal(result.result, "42", text);
      assert.match(second.stderr(), /snapshot/);
    } finally {
      await second.close();
    }

    const third = await startServer(env);
    try {
      assert.equal((await third.py("'rebuilt'")).result.result, "'rebuilt'");
    } finally {
      await third.close();
    }
    const again = snapshotFiles(cacheDir);
    const rebuilt = JSON.parse(await Deno.readTextFile(again.manifest)) as { sha256: string };
    assert.equal(await sha256(again.bin), rebuilt.sha256, "a valid snapshot replaced the corrupt one");
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a waiting launcher that died is replaced, and a new start uses the new permissions", async () => {
  const first = await startServer();
  try {
    assert.ok(await eventually(() => jsRunPids(first.pid).length >= 1), "a launcher is waiting");
    const waiting = jsRunPids(first.pid);
    for (const pid of waiting) Deno.kill(pid, "SIGKILL");
    // Dead and reaped, as a launcher killed while the server was idle would be.
    assert.ok(await eventually(() => waiting.every((pid) => !existsSync(`/proc/${pid}`))));
    const { result } = await first.js("console.log('after the kill')");
    assert.equal(result.stdout, "after the kill\n", result.stderr);
    const env = await first.js(`console.log(Deno.env.get("HOME") ?? "none")`);
    assert.equal(env.isError, true, "no env permission in the first start");
  } finally {
    await first.close();
  }
  const second = await startServer({ DENO_PERMISSION_ARGS: "--allow-env=HOME" });
  try {
    assert.ok(await eventually(() => jsRunPids(second.pid).length >= 1), "a launcher is waiting");
    const env = await second.js(`console.log(typeof Deno.env.get("HOME"))`);
    assert.equal(env.result.stdout, "string\n", env.result.stderr);
  } finally {
    await second.close();
  }
});

Deno.test("a Python process killed while idle is replaced, and the client is told at its log level", async () => {
  const server = await startServer();
  const messages: Array<{ level: string; data: unknown }> = [];
  server.client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    messages.push(notification.params);
  });
  try {
    await server.client.setLoggingLevel("warning");
    await server.py("x = 1");
    const host = childPids(server.pid).find((pid) =>
      Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("function%20host")
    );
    assert.ok(host);
    Deno.kill(host, "SIGKILL");
    assert.ok(
      await eventually(() =>
        messages.some((m) => m.level === "warning" && /idle Python process exited/.test(String(m.data)))
      ),
      `log messages: ${JSON.stringify(messages)}`,
    );
    const { result } = await server.py("'x' in globals()");
    assert.equal(result.result, "False");
  } finally {
    await server.close();
  }
});
