/**
 * Faults and bad input: a fuzzed MCP surface, a Python process killed mid-call, a package mirror that hangs
 * or returns garbage, a full temp disk, a client that vanishes mid-run, and a load of mixed calls. After
 * each the next call works and no process or temp directory is left behind.
 */
import assert from "node:assert/strict";
import { BIN, childPids, eventually, serverEnv, startServer } from "../_helpers.ts";
import { startMirror } from "../_mirror.ts";

const encoder = new TextEncoder();

/** Processes anywhere whose command line mentions `marker` (Linux). */
function processesMentioning(marker: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      if (Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).includes(marker)) {
        found.push(Number(entry.name));
      }
    } catch {
      // Gone.
    }
  }
  return found;
}

/** Entries below a private TMPDIR, two levels down (the server's root and the runs in it). */
function tempEntries(tmp: string): string[] {
  const entries: string[] = [];
  for (const root of Deno.readDirSync(tmp)) {
    entries.push(root.name);
    if (root.isDirectory) {
      try {
        for (const run of Deno.readDirSync(`${tmp}/${root.name}`)) entries.push(`${root.name}/${run.name}`);
      } catch {
        // Removed meanwhile.
      }
    }
  }
  return entries;
}

function pythonHostPid(serverPid: number): number | undefined {
  return childPids(serverPid).find((pid) => {
    try {
      return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("function%20host");
    } catch {
      return false;
    }
  });
}

Deno.test("malformed and hostile JSON-RPC gets errors and never stops the server", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BIN],
    env: serverEnv(),
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  const send = (line: string | Uint8Array) =>
    writer.write(typeof line === "string" ? encoder.encode(line + "\n") : line);
  const replies = new Map<number, Record<string, unknown>>();
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const message = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (typeof message.id === "number") replies.set(message.id, message);
      }
    }
  })();
  const call = (id: number, params: unknown) =>
    send(JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params }));
  try {
    await send(JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "fuzz", version: "0" } },
    }));
    await send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    const garbage = [
      "not json at all",
      "{",
      "[]",
      "{}",
      "null",
      '"a string"',
      '{"jsonrpc":"2.0"}',
      '{"jsonrpc":"1.0","id":77,"method":"tools/list"}',
      "[".repeat(100_000) + "]".repeat(100_000),
      '{"jsonrpc":"2.0","id":{"nested":true},"method":"tools/list"}',
    ];
    for (const line of garbage) await send(line);
    await send(new Uint8Array([0xff, 0xfe, 0x7b, 0x22, 0xc3, 0x28, 0x0a]));
    await send(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "no/such/method" }));
    await call(3, { name: "run_javascript", arguments: { code: 123 } });
    await call(4, { name: "no_such_tool", arguments: {} });
    await call(5, "not an object");
    await call(6, { name: "run_python", arguments: { code: "1", packages: "not a list" } });
    await call(7, { name: "run_javascript", arguments: { code: "x".repeat(5 * 1024 * 1024) } });
    await call(8, { name: "run_python", arguments: { code: "1", packages: Array(1000).fill("x") } });
    await call(9, { name: "run_javascript", arguments: { code: "console.log('\\ud800 lone surrogate')" } });
    await call(10, { name: "run_javascript", arguments: { code: "console.log(6 * 7)" } });
    assert.ok(await eventually(() => replies.has(10), 30_000), "the server stopped answering");
    const reply = replies.get(10) as { result: { structuredContent: { stdout: string } } };
    assert.equal(reply.result.structuredContent.stdout, "42\n");
    for (const id of [2, 3, 4, 5, 6, 7, 8]) {
      const answer = replies.get(id) as { error?: unknown; result?: { isError?: boolean } } | undefined;
      assert.ok(answer, `no answer to request ${id}`);
      assert.ok(
        answer.error || answer.result?.isError,
        `request ${id} was not refused: ${JSON.stringify(answer)}`,
      );
    }
    assert.ok(replies.has(9), "a lone surrogate in code gets an answer");
    assert.equal(
      await Promise.race([child.status.then(() => "exited"), Promise.resolve("running")]),
      "running",
    );
  } finally {
    await writer.close().catch(() => {});
    await child.status;
    await reading.catch(() => {});
  }
});

Deno.test("a Python process killed mid-call is reported, restarted, and the next call works", async () => {
  const server = await startServer();
  try {
    await server.py("kept = 1");
    const call = server.py("while True:\n    pass", { timeoutMs: 60_000 });
    assert.ok(await eventually(() => pythonHostPid(server.pid) !== undefined));
    await new Promise((resolve) => setTimeout(resolve, 300));
    Deno.kill(pythonHostPid(server.pid) as number, "SIGKILL");
    const { result, isError } = await call;
    assert.equal(isError, true);
    assert.equal(result.status, "crashed");
    assert.equal(result.stateReset, true);
    assert.match(result.message ?? "", /restarted/);
    const after = await server.py("'kept' in globals(), 6 * 7");
    assert.equal(after.result.result, "(False, 42)");
  } finally {
    await server.close();
  }
});

Deno.test("a package mirror that hangs or returns garbage gives clear errors, then the server works", async (t) => {
  const mirror = await startMirror();
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-faulty-mirror-" });
  const server = await startServer({
    CODE_RUNNER_PYODIDE_PACKAGES_URL: mirror.pyodideUrl,
    CODE_RUNNER_PYPI_INDEX_URLS: mirror.indexUrl,
    CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir,
    CODE_RUNNER_INSTALL_TIMEOUT_MS: "3000",
  });
  try {
    await t.step("a hanging mirror hits the install limit", async () => {
      mirror.delayMs = 60_000;
      try {
        const { result, isError } = await server.py("import humanize");
        assert.equal(isError, true);
        assert.equal(result.status, "timeout");
        assert.match(result.message ?? "", /Installing packages took longer than 3000 ms/);
      } finally {
        mirror.delayMs = 0;
      }
      assert.equal((await server.py("6 * 7")).result.result, "42");
    });
    await t.step("garbage instead of wheels is refused by hash", async () => {
      mirror.corrupt = true;
      try {
        const { result, isError } = await server.py("import humanize");
        assert.equal(isError, true);
        assert.match(result.message ?? "", /sha256/);
      } finally {
        mirror.corrupt = false;
      }
      const { result, text } = await server.py("import humanize\nhumanize.intcomma(1000)");
      assert.equal(result.result, "'1,000'", text);
    });
  } finally {
    await server.close();
    await mirror.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a full temp disk fails the runs that need space, clearly, and the server recovers", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "code-runner-tinyfs-" });
  const mounted = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=4m", "tmpfs", tmp] })
    .output();
  assert.ok(
    mounted.success,
    `this test mounts a 4 MiB tmpfs and needs root: ${new TextDecoder().decode(mounted.stderr)}`,
  );
  try {
    const server = await startServer({ TMPDIR: tmp });
    try {
      const fill = await server.js(
        `const chunk = new Uint8Array(256 * 1024); const f = Deno.openSync("fill", { write: true, create: true });\n` +
          `try { for (;;) f.writeSync(chunk); } catch (e) { console.log(e.name); }`,
      );
      assert.match(fill.result.stdout, /Error|NoSpace|StorageFull/i, fill.text);
      const holder = server.js(
        `const chunk = new Uint8Array(256 * 1024); const f = Deno.openSync("fill", { write: true, create: true });\n` +
          `try { for (;;) f.writeSync(chunk); } catch { console.log("full"); }\nawait new Promise((r) => setTimeout(r, 3000));`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const squeezed = await server.js(`console.log("x".repeat(1000))`);
      assert.ok(
        squeezed.result.status === "ok" || /could not prepare|space|nearly full/i.test(squeezed.text),
        squeezed.text,
      );
      assert.equal((await holder).result.stdout, "full\n");
      await server.assertAlive();
    } finally {
      await server.close();
    }
  } finally {
    await new Deno.Command("umount", { args: [tmp] }).output();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a client that disconnects mid-run leaves no process and no temp dir behind", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "code-runner-disconnect-" });
  try {
    const server = await startServer({ TMPDIR: tmp });
    const js = server.js("while (true) {}", { timeoutMs: 60_000 }).catch(() => null);
    const py = server.py("while True:\n    pass", { timeoutMs: 60_000 }).catch(() => null);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.ok(processesMentioning(tmp).length >= 2, "the runs started");
    await server.close();
    await Promise.all([js, py]);
    assert.ok(
      await eventually(() => processesMentioning(tmp).length === 0, 10_000),
      "a process outlived the client",
    );
    assert.ok(await eventually(() => tempEntries(tmp).length === 0), `temp dirs left: ${tempEntries(tmp)}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("200 mixed calls at concurrency 8 all get the right answer, and resources return to baseline", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "code-runner-load-" });
  const server = await startServer({ TMPDIR: tmp });
  try {
    await server.py("0");
    await server.js("0");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const baseline = {
      processes: processesMentioning(tmp).length,
      fds: [...Deno.readDirSync(`/proc/${server.pid}/fd`)].length,
      temp: tempEntries(tmp).length,
    };
    type Case = {
      run: () => Promise<{ result: { status: string; stdout: string; stderr: string; result?: string } }>;
      expect: (r: { status: string; stdout: string; stderr: string; result?: string }) => boolean;
    };
    const cases: Case[] = Array.from({ length: 200 }, (_, i) => {
      switch (i % 8) {
        case 0:
        case 1:
          return { run: () => server.js(`console.log(${i} * 3)`), expect: (r) => r.stdout === `${i * 3}\n` };
        case 2:
          return {
            run: () => server.js(`throw new Error("fail-${i}")`),
            expect: (r) => r.status === "error" && r.stderr.includes(`fail-${i}`),
          };
        case 3:
          return {
            run: () => server.js("while (true) {}", { timeoutMs: 300 }),
            expect: (r) => r.status === "timeout",
          };
        case 4:
        case 5:
          return { run: () => server.py(`${i} * 3`), expect: (r) => r.result === String(i * 3) };
        case 6:
          return {
            run: () => server.py(`raise ValueError("fail-${i}")`),
            expect: (r) => r.status === "error" && r.stderr.includes(`fail-${i}`),
          };
        default:
          return {
            run: () => server.py("while True:\n    pass", { timeoutMs: 300 }),
            expect: (r) => r.status === "timeout",
          };
      }
    });
    let next = 0;
    let restarted = false;
    const failures: string[] = [];
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < cases.length) {
        const index = next++;
        const { result } = await (cases[index] as Case).run();
        if ((result as { stateReset?: boolean }).stateReset) restarted = true;
        if (!(cases[index] as Case).expect(result)) {
          failures.push(`call ${index}: ${JSON.stringify(result).slice(0, 200)}`);
        }
      }
    }));
    assert.deepEqual(failures, []);
    await server.assertAlive();
    // After a restart the session keeps a spare interpreter ready: one process and one directory more.
    const spare = restarted ? 1 : 0;
    assert.ok(
      await eventually(() => processesMentioning(tmp).length === baseline.processes + spare, 10_000),
      `processes: ${processesMentioning(tmp).length}, baseline ${baseline.processes} + ${spare}`,
    );
    assert.ok(
      await eventually(() => tempEntries(tmp).length === baseline.temp + spare, 10_000),
      `temp: ${tempEntries(tmp)}, baseline ${baseline.temp} + ${spare}`,
    );
    assert.ok(
      // A spare interpreter holds three pipes (stdin, stdout, stderr) in the server.
      await eventually(() =>
        [...Deno.readDirSync(`/proc/${server.pid}/fd`)].length <= baseline.fds + 2 + 3 * spare
      ),
      `open files grew: ${
        [...Deno.readDirSync(`/proc/${server.pid}/fd`)].length
      }, baseline ${baseline.fds} + ${spare} spare`,
    );
  } finally {
    await server.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
