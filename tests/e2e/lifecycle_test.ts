/**
 * The server process as a user meets it: start-up errors, the terminal banner, a clean stdout, and a
 * shutdown that leaves no process or temp directory behind.
 */
import assert from "node:assert/strict";
import {
  BIN,
  busyJsRunPids,
  busyPids,
  childPids,
  denoDir,
  eventually,
  isAlive,
  serverEnv,
} from "../_helpers.ts";

const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
};
const INITIALIZED = { jsonrpc: "2.0", method: "notifications/initialized" };
const call = (id: number, code: string) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name: "run_javascript", arguments: { code } },
});

/** Starts the bin with piped stdio and a private TMPDIR, the way a client would. */
function spawnServer(env: Record<string, string> = {}, tmp?: string) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BIN],
    env: { ...serverEnv(env), ...(tmp ? { TMPDIR: tmp } : {}) },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Reads newline-delimited JSON-RPC messages from the server's stdout. */
async function* messages(stdout: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  let buffer = "";
  for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      // Anything that is not JSON-RPC on stdout would corrupt the client's stream.
      const message = JSON.parse(line);
      assert.equal(message.jsonrpc, "2.0", `not JSON-RPC on stdout: ${line}`);
      yield message;
    }
  }
  assert.equal(buffer, "", `partial line on stdout: ${buffer}`);
}

async function send(writer: WritableStreamDefaultWriter<Uint8Array>, message: unknown) {
  await writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
}

async function tempDirsIn(dir: string): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names;
}

Deno.test("stdout carries only JSON-RPC, even when user code prints", async () => {
  const tmp = await Deno.makeTempDir();
  const child = spawnServer({}, tmp);
  const writer = child.stdin.getWriter();
  try {
    await send(writer, INIT);
    await send(writer, INITIALIZED);
    await send(writer, call(2, `console.log("plain text"); console.error("err text"); console.log("{");`));
    const replies = messages(child.stdout);
    const init = (await replies.next()).value as { id: number };
    assert.equal(init.id, 1);
    const reply = (await replies.next()).value as {
      id: number;
      result: { structuredContent: { stdout: string } };
    };
    assert.equal(reply.id, 2);
    assert.equal(reply.result.structuredContent.stdout, "plain text\n{\n");
    await writer.close();
    for await (const _ of replies) { /* the rest must parse too */ }
    const status = await child.status;
    assert.equal(status.code, 0);
  } finally {
    await child.stderr.cancel();
    await Deno.remove(tmp, { recursive: true });
  }
});

for (const how of ["stdin closed", "SIGTERM", "SIGINT"] as const) {
  Deno.test(`on ${how} the server kills every run and removes its temp dirs`, async () => {
    const tmp = await Deno.makeTempDir();
    const child = spawnServer({}, tmp);
    const writer = child.stdin.getWriter();
    try {
      await send(writer, INIT);
      await send(writer, INITIALIZED);
      await send(writer, call(2, "setInterval(() => {}, 1000); while (true) {}"));
      assert.ok(await eventually(() => busyJsRunPids(child.pid).length === 1, 10000), "the run started");
      // The JavaScript run and the Python process: every child must die with the server.
      const runs = childPids(child.pid);
      assert.ok(runs.length >= 1);
      if (how === "stdin closed") await writer.close();
      else child.kill(how);
      const status = await child.status;
      assert.equal(status.success, true, `exit ${status.code} ${status.signal}`);
      assert.ok(
        await eventually(() => runs.every((pid) => !isAlive(pid))),
        "a run outlived the server",
      );
      assert.deepEqual(await tempDirsIn(tmp), [], "temp dirs left behind");
    } finally {
      await writer.close().catch(() => {});
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

/** The Python memory snapshots in the shared package cache, with their modification times. */
function snapshots(): string[] {
  try {
    return [...Deno.readDirSync(`${denoDir()}/code-runner-mcp/packages/snapshots`)].map((entry) =>
      `${entry.name} ${
        Deno.statSync(`${denoDir()}/code-runner-mcp/packages/snapshots/${entry.name}`).mtime?.getTime()
      }`
    ).sort();
  } catch {
    return [];
  }
}

Deno.test("a signal during start-up ends the server without waiting for Python, and keeps the snapshot", async (t) => {
  await t.step("Python still booting from the snapshot", async () => {
    const before = snapshots();
    const tmp = await Deno.makeTempDir();
    const child = spawnServer({}, tmp);
    const writer = child.stdin.getWriter();
    try {
      await send(writer, INIT);
      await messages(child.stdout).next();
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      assert.deepEqual(await tempDirsIn(tmp), []);
      // Killed while it booted, the interpreter did not count as a snapshot that fails to boot.
      assert.deepEqual(snapshots(), before);
    } finally {
      await writer.close().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      await Deno.remove(tmp, { recursive: true });
    }
  });

  await t.step("Python waiting for a package mirror that never answers", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) held.push(conn);
    })();
    const tmp = await Deno.makeTempDir();
    const child = spawnServer({
      CODE_RUNNER_PYODIDE_PACKAGES_URL: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/pyodide/`,
      CODE_RUNNER_PACKAGE_CACHE_DIR: `${tmp}/cache`,
    }, tmp);
    const writer = child.stdin.getWriter();
    try {
      await send(writer, INIT);
      // The client is answered while Python waits (the server gives up on a silent source after 30 s).
      const answered = await Promise.race([
        messages(child.stdout).next().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000)),
      ]);
      assert.ok(answered, "initialize waited for the package mirror");
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      assert.deepEqual(await tempDirsIn(tmp), ["cache"]);
    } finally {
      await writer.close().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      listener.close();
      for (const conn of held) conn.close();
      await accepting.catch(() => {});
      await Deno.remove(tmp, { recursive: true });
    }
  });
});

Deno.test("children die with a SIGKILLed server, however busy; the next server removes what it left", async () => {
  const tmp = await Deno.makeTempDir();
  const child = spawnServer({}, tmp);
  const writer = child.stdin.getWriter();
  try {
    await send(writer, INIT);
    await send(writer, INITIALIZED);
    await send(writer, call(2, "while (true) {}"));
    await send(writer, {
      jsonrpc: "2.0",
      id: 3,
      method: "tools/call",
      params: { name: "run_python", arguments: { code: "while True: pass" } },
    });
    // The JavaScript run and the Python host both spin; the waiting launcher and the spare sleep.
    assert.ok(await eventually(() => busyPids(child.pid).length >= 2, 60000), "both runs started");
    // Deno has written the emit cache of a launcher's modules, outside the server's directory.
    const emitCaches = `${denoDir()}/gen/file${await Deno.realPath(tmp)}`;
    assert.ok(
      await eventually(() => {
        try {
          return [...Deno.readDirSync(emitCaches)].length > 0;
        } catch {
          return false;
        }
      }, 60000),
      "no emit cache was written",
    );
    const children = childPids(child.pid);
    child.kill("SIGKILL");
    await child.status;
    assert.ok(
      await eventually(() => children.every((pid) => !isAlive(pid)), 2000),
      `children outlived the server: ${children.filter(isAlive).join(", ")}`,
    );
    const [deadRoot] = await tempDirsIn(tmp);
    assert.ok(deadRoot, "a SIGKILLed server leaves its run directory");
    // And Deno's emit cache of its JavaScript runs, outside it.
    const deadEmitCache = `${emitCaches}/${deadRoot}`;
    assert.ok(await Deno.stat(deadEmitCache).then(() => true, () => false), `no ${deadEmitCache}`);
    // The next server started with the same TMPDIR removes the directory of the dead one.
    const next = spawnServer({}, tmp);
    const nextWriter = next.stdin.getWriter();
    await send(nextWriter, INIT);
    const replies = messages(next.stdout);
    await replies.next();
    assert.equal((await tempDirsIn(tmp)).length, 1, "only the new server's directory remains");
    assert.equal(
      await Deno.stat(deadEmitCache).then(() => true, () => false),
      false,
      "the emit cache remains",
    );
    await nextWriter.close();
    for await (const _ of replies) { /* drain */ }
    await next.status;
    await next.stderr.cancel().catch(() => {});
  } finally {
    await writer.close().catch(() => {});
    await child.stdout.cancel().catch(() => {});
    await child.stderr.cancel().catch(() => {});
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a bad DENO_PERMISSION_ARGS stops the server at start-up, naming the token", async (t) => {
  for (const bad of ["--inspect", "--allow-read /etc", "--v8-flags=--expose-gc", "--config=x.json"]) {
    await t.step(bad, async () => {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", BIN],
        env: serverEnv({ DENO_PERMISSION_ARGS: bad }),
        stdin: "null",
      }).output();
      assert.equal(code, 1);
      assert.equal(stdout.byteLength, 0);
      const token = bad.includes(" ") ? bad.split(" ")[1] as string : bad;
      assert.ok(new TextDecoder().decode(stderr).includes(JSON.stringify(token)));
    });
  }
});

Deno.test("--help documents every environment variable; unknown flags are refused", async () => {
  const help = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", BIN, "--help"] }).output();
  assert.equal(help.code, 0);
  const text = new TextDecoder().decode(help.stderr);
  for (
    const name of [
      "DENO_PERMISSION_ARGS",
      "CODE_RUNNER_TIMEOUT_MS",
      "CODE_RUNNER_MAX_TIMEOUT_MS",
      "CODE_RUNNER_MEMORY_LIMIT_MB",
      "CODE_RUNNER_OUTPUT_LIMIT_BYTES",
      "CODE_RUNNER_MAX_CONCURRENCY",
    ]
  ) assert.ok(text.includes(name), `--help lacks ${name}`);
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  for (const name of text.match(/\b(?:CODE_RUNNER|DENO_PERMISSION)_[A-Z_]+/g) ?? []) {
    assert.ok(readme.includes(name), `README lacks ${name}`);
  }
  const bad = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", BIN, "--bogus"] }).output();
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--bogus/);
});

Deno.test("started by hand in a terminal, the server says what it is on stderr", async () => {
  // `script` gives the server a pseudo-terminal as stdin, as a person typing the command would.
  const script = await new Deno.Command("script", { args: ["--version"] }).output().catch(() => null);
  if (!script?.success) throw new Error("the `script` command (util-linux) is needed for this test");
  const tmp = await Deno.makeTempDir();
  try {
    const command = `${Deno.execPath()} run -A ${BIN} 2>${tmp}/stderr.txt`;
    const child = new Deno.Command("script", {
      args: ["-q", "-c", command, "/dev/null"],
      env: serverEnv(),
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const seen = await eventually(() => {
      try {
        return Deno.readTextFileSync(`${tmp}/stderr.txt`).includes("Ctrl-C");
      } catch {
        return false;
      }
    }, 15000);
    child.kill("SIGKILL");
    await child.status;
    await child.stdin.close().catch(() => {});
    const text = Deno.readTextFileSync(`${tmp}/stderr.txt`);
    assert.ok(seen, `no banner: ${text}`);
    assert.match(text, /MCP server/);
    assert.match(text, /permissions for runs: none/);
    assert.match(text, /claude_desktop_config\.json/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
