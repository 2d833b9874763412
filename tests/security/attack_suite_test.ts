/**
 * The attack suite: every attack runs against both tools' sandboxes under three operator profiles — no
 * permissions, `--allow-net`, and `--allow-read=<a test dir> --allow-env=<one var>`. An attack on a
 * boundary the profile does not grant must fail; in every profile no canary (a secret file outside every
 * grant, a secret variable in the server's environment) may appear in a result, a notification or the
 * server's log, the canary listener sees no connection unless the profile grants the network, and the
 * server answers a trivial call after each attack.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connectionCanary, startServer, type ToolOutput } from "../_helpers.ts";

type Profile = "none" | "net" | "read-env";

interface Attack {
  name: string;
  tool: "js" | "py";
  code: string;
  /** The permission that makes this attack legitimate; where the profile has it, success is allowed. */
  grantedBy?: "net";
  /** Profiles the attack is not run in (link-local traffic must never leave this machine). */
  skip?: Profile[];
  /** Runs first, in a separate call (state carried across calls is the attack). */
  setup?: string;
  timeoutMs?: number;
  /** Overrides "must fail": checks the outcome itself. */
  check?: (output: ToolOutput) => void;
}

const PLANTED = `planted-${crypto.randomUUID()}`;
const SECRET_TEXT = `canary-file-${crypto.randomUUID()}`;
const SECRET_ENV = `canary-env-${crypto.randomUUID()}`;

function attacks(
  paths: { secret: string; secretModule: string; cacheDir: string; denoDir: string; port: number },
): Attack[] {
  const s = JSON.stringify(paths.secret);
  const canaryUrl = `http://127.0.0.1:${paths.port}/`;
  const mustNotSee = (marker: string) => (output: ToolOutput) =>
    assert.ok(!output.text.includes(marker), `state crossed runs: ${output.text}`);
  const ok = (output: ToolOutput) => assert.equal(output.result.status, "ok", output.text);
  const notOk = (output: ToolOutput) => assert.notEqual(output.result.status, "ok", output.text);
  const js = (name: string, code: string, extra: Partial<Attack> = {}): Attack => ({
    name,
    tool: "js",
    code,
    ...extra,
  });
  const py = (name: string, code: string, extra: Partial<Attack> = {}): Attack => ({
    name,
    tool: "py",
    code,
    ...extra,
  });
  return [
    // Host files, every way in.
    js("Deno.readTextFile of a host file", `console.log(await Deno.readTextFile(${s}))`),
    js("node:fs of a host file", `import fs from "node:fs"; console.log(fs.readFileSync(${s}, "utf8"))`),
    js("fetch(file:) of a host file", `console.log(await (await fetch("file://" + ${s})).text())`),
    js("static text import", `import t from "file://${paths.secret}" with { type: "text" }; console.log(t)`),
    js(
      "dynamic text import",
      `console.log((await import("file://${paths.secret}", { with: { type: "text" } })).default)`,
    ),
    js(
      "JSON import (its parse error would quote the file)",
      `import j from "file://${paths.secret}" with { type: "json" }; console.log(j)`,
    ),
    js("import of a host module", `console.log((await import("file://${paths.secretModule}")).default)`),
    js(
      "relative path out of the work dir",
      `console.log(Deno.readTextFileSync("../../../../../../../../${paths.secret}"))`,
    ),
    js("stat of a host file", `console.log(JSON.stringify(Deno.statSync(${s})))`),
    js(
      "Deno.open of a host file",
      `const f = Deno.openSync(${s}); const b = new Uint8Array(99); f.readSync(b); console.log(new TextDecoder().decode(b))`,
    ),
    js("listing the root", `console.log([...Deno.readDirSync("/")].map((e) => e.name))`),
    js("/proc/self/environ", `console.log(Deno.readTextFileSync("/proc/self/environ"))`),
    js("the server's /proc environ", `console.log(Deno.readTextFileSync("/proc/" + Deno.ppid + "/environ"))`),
    js("a symlink to a host file", `Deno.symlinkSync(${s}, "l"); console.log(Deno.readTextFileSync("l"))`),
    js(
      "a worker reading a host file",
      `const src = ${
        JSON.stringify(`self.postMessage(Deno.readTextFileSync(${s}))`)
      }; const w = new Worker("data:application/javascript," + encodeURIComponent(src), { type: "module" }); console.log(await new Promise((ok, fail) => { w.onmessage = (e) => ok(e.data); w.onerror = (e) => { e.preventDefault(); fail(new Error("worker: " + e.message)); }; }))`,
    ),
    js(
      "a worker asking for more permissions",
      `new Worker("data:application/javascript,1", { type: "module", deno: { permissions: { read: true, env: true } } })`,
    ),
    // Environment and process information.
    js("Deno.env.get of a server secret", `console.log(Deno.env.get("CANARY_SECRET"))`),
    js("Deno.env.toObject", `console.log(JSON.stringify(Deno.env.toObject()))`, {
      check: (output) => assert.ok(!output.text.includes(SECRET_ENV)),
    }),
    js(
      "node:process.env",
      `import process from "node:process"; console.log(process.env.CANARY_SECRET ?? "absent")`,
      {
        check: (output) => assert.ok(!output.text.includes(SECRET_ENV)),
      },
    ),
    js("Deno.osRelease and hostname", `console.log(Deno.osRelease(), Deno.hostname())`),
    // Subprocesses and FFI.
    js(
      "Deno.Command",
      `console.log(new TextDecoder().decode(new Deno.Command("cat", { args: [${s}] }).outputSync().stdout))`,
    ),
    js(
      "node:child_process",
      `import cp from "node:child_process"; console.log(cp.execSync("cat " + ${s}).toString())`,
    ),
    js("Deno.dlopen", `Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } })`),
    js("process.dlopen", `import process from "node:process"; process.dlopen({ exports: {} }, "libc.so.6")`),
    // Network.
    js("fetch to a loopback listener", `await fetch(${JSON.stringify(canaryUrl)})`, { grantedBy: "net" }),
    js(
      "Deno.connect to a loopback listener",
      `await Deno.connect({ hostname: "127.0.0.1", port: ${paths.port} })`,
      { grantedBy: "net" },
    ),
    js(
      "node:net to a loopback listener",
      `import net from "node:net"; await new Promise((ok, fail) => { const c = net.connect(${paths.port}, "127.0.0.1", ok); c.on("error", fail); })`,
      { grantedBy: "net" },
    ),
    js(
      "a WebSocket to a loopback listener",
      `await new Promise((ok, fail) => { const w = new WebSocket("ws://127.0.0.1:${paths.port}/"); w.onopen = ok; w.onerror = () => fail(new Error("socket")); })`,
      { grantedBy: "net", check: notOk },
    ),
    js("fetch to a link-local metadata address", `await fetch("http://169.254.169.254/latest/meta-data/")`, {
      skip: ["net"],
    }),
    js("listening on a port", `Deno.listen({ hostname: "127.0.0.1", port: 0 })`, { grantedBy: "net" }),
    js("an http import from loopback", `await import(${JSON.stringify(`${canaryUrl}x.js`)})`),
    // Persistence: caches, config, storage, shared state.
    js(
      "writing Deno's module cache",
      `Deno.writeTextFileSync(${JSON.stringify(join(paths.denoDir, "poison.txt"))}, "x")`,
    ),
    js("writing next to the runs", `Deno.writeTextFileSync("../poison.txt", "x")`),
    js(
      "writing the package cache",
      `Deno.writeTextFileSync(${JSON.stringify(join(paths.cacheDir, "files", "evil.whl"))}, "x")`,
    ),
    js("localStorage across runs", `console.log(localStorage.getItem("planted"))`, {
      setup: `localStorage.setItem("planted", "${PLANTED}")`,
      check: mustNotSee(PLANTED),
    }),
    js(
      "the Cache API across runs",
      `const c = await caches.open("p"); const r = await c.match("https://x.example/"); console.log(r ? await r.text() : "none")`,
      {
        setup:
          `const c = await caches.open("p"); await c.put("https://x.example/", new Response("${PLANTED}"))`,
        check: mustNotSee(PLANTED),
      },
    ),
    js(
      "files in the work dir across runs",
      `console.log([...Deno.readDirSync(".")].map((e) => e.name).join())`,
      {
        setup: `Deno.writeTextFileSync("${PLANTED}.txt", "x")`,
        check: mustNotSee(PLANTED),
      },
    ),
    js(
      "prototype pollution across runs",
      `console.log(({}).polluted ?? "clean", globalThis.planted ?? "clean")`,
      {
        setup: `Object.prototype.polluted = "${PLANTED}"; globalThis.planted = "${PLANTED}"`,
        check: mustNotSee(PLANTED),
      },
    ),
    js(
      "a deno.json planted for a bare import",
      `try { await import("planted"); } catch { console.log("not remapped"); }`,
      {
        setup:
          `Deno.writeTextFileSync("deno.json", JSON.stringify({ imports: { planted: "data:text/javascript,console.log('${PLANTED}')" } }))`,
        check: mustNotSee(PLANTED),
      },
    ),
    // Denial of service.
    js("a busy loop", "while (true) {}", { timeoutMs: 500 }),
    js("deep recursion", "const f = (n) => f(n + 1) + 1; f(0)"),
    js("a heap bomb", "const a = []; while (true) a.push(new Array(1e5).fill(1))"),
    js("an ArrayBuffer bomb", "const a = []; while (true) a.push(new Uint8Array(64 * 1024 * 1024).fill(1))"),
    js(
      "a wasm memory bomb",
      "const m = new WebAssembly.Memory({ initial: 1, maximum: 65536 }); while (true) { m.grow(512); new Uint8Array(m.buffer).fill(1); }",
    ),
    js(
      "a disk filler",
      `const c = new Uint8Array(1 << 20); for (let i = 0; ; i++) Deno.writeFileSync("f" + i, c);`,
      { check: (output) => assert.equal(output.result.diskExceeded, true, output.text) },
    ),
    js("an output flood", `const s = "x".repeat(1 << 16); for (let i = 0; i < 5000; i++) console.log(s)`, {
      check: (output) => assert.equal(output.result.truncated, true),
    }),
    js(
      "a worker bomb",
      `for (;;) new Worker("data:application/javascript,while(true){}", { type: "module" })`,
      { timeoutMs: 1000 },
    ),
    js("a timer bomb", "for (let i = 0; ; i++) setInterval(() => {}, 1)", { timeoutMs: 500 }),
    js("a microtask flood", "const spin = () => Promise.resolve().then(spin); spin()", { timeoutMs: 500 }),
    // Killing or corrupting the server.
    js("Deno.exit", "Deno.exit(0)", { check: ok }),
    js("process.exit with a code", `import process from "node:process"; process.exit(7)`, {
      check: (output) => assert.equal(output.result.exitCode, 7),
    }),
    js("signalling the server", `Deno.kill(Deno.ppid, "SIGKILL")`),
    js("signalling its own process group", `Deno.kill(-Deno.pid, "SIGKILL")`, { check: () => {} }),
    js("an unhandled rejection", `Promise.reject(new Error("unhandled"))`),
    js(
      "forged JSON-RPC on stdout",
      `console.log(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { forged: true } }))`,
      {
        check: ok,
      },
    ),
    js(
      "reading the MCP stream from stdin",
      `const c = []; for await (const b of Deno.stdin.readable) c.push(b); console.log(c.length)`,
      {
        check: (output) => assert.equal(output.result.stdout, "0\n"),
      },
    ),

    // Python: the host realm through js, pyodide_js, run_js and proxy constructors.
    py("open() of a host path", `print(open(${s}).read())`),
    py("js.Deno.readTextFileSync", `import js\nprint(js.Deno.readTextFileSync(${s}))`),
    py("js.fetch(file:)", `import js\nprint(await (await js.fetch("file://" + ${s})).text())`),
    py(
      "pyfetch(file:)",
      `from pyodide.http import pyfetch\nprint(await (await pyfetch("file://" + ${s})).string())`,
    ),
    py(
      "run_js",
      `from pyodide.code import run_js\nprint(run_js("Deno.readTextFileSync(" + repr(${s}) + ")"))`,
    ),
    py(
      "a JS Function from a proxy's constructor",
      `import js\nprint(js.Object.constructor("p", "return Deno.readTextFileSync(p)")(${s}))`,
    ),
    py(
      "a dynamic import through run_js",
      `from pyodide.code import run_js\nprint((await run_js("import('file://" + ${s} + "', { with: { type: 'text' } })")).default)`,
    ),
    py(
      "an Emscripten NODEFS mount of /",
      `import js, pyodide_js\nfrom pyodide.ffi import to_js\npyodide_js.FS.mkdirTree("/host")\npyodide_js.FS.mount(pyodide_js.FS.filesystems.NODEFS, to_js({"root": "/"}, dict_converter=js.Object.fromEntries), "/host")\nprint(open("/host" + ${s}).read())`,
    ),
    py("ctypes", `import ctypes\nctypes.CDLL("libc.so.6")`),
    py("js.Deno.env", `import js\nprint(js.Deno.env.get("CANARY_SECRET"))`),
    py("os.environ", `import os\nprint(dict(os.environ))`, {
      check: (output) => assert.ok(!output.text.includes(SECRET_ENV)),
    }),
    py(
      "Deno.env.toObject through run_js",
      `from pyodide.code import run_js\nprint(run_js("JSON.stringify(Deno.env.toObject())"))`,
    ),
    py("js.Deno.Command", `import js\njs.Deno.Command.new("cat").outputSync()`),
    py("the subprocess module", `import subprocess\nsubprocess.run(["cat", ${s}])`),
    py("js.Deno.dlopen", `import js\njs.Deno.dlopen("libc.so.6", js.Object.new())`),
    py("js.fetch to a loopback listener", `import js\nawait js.fetch(${JSON.stringify(canaryUrl)})`, {
      grantedBy: "net",
    }),
    py(
      "pyfetch to a loopback listener",
      `from pyodide.http import pyfetch\nawait pyfetch(${JSON.stringify(canaryUrl)})`,
      { grantedBy: "net" },
    ),
    py(
      "js.Deno.connect",
      `import js\nawait js.Deno.connect(js.JSON.parse('{"hostname": "127.0.0.1", "port": ${paths.port}}'))`,
      { grantedBy: "net" },
    ),
    py("js.Deno.listen", `import js\njs.Deno.listen(js.JSON.parse('{"hostname": "127.0.0.1", "port": 0}'))`, {
      grantedBy: "net",
    }),
    py("fetch to a link-local metadata address", `import js\nawait js.fetch("http://169.254.169.254/")`, {
      skip: ["net"],
    }),
    py(
      "writing the package cache",
      `import js\njs.Deno.writeTextFileSync(${
        JSON.stringify(join(paths.cacheDir, "files", "evil.whl"))
      }, "x")`,
    ),
    py(
      "writing the Python snapshot",
      `import js\njs.Deno.writeTextFileSync(${
        JSON.stringify(join(paths.cacheDir, "snapshots", "evil.bin"))
      }, "x")`,
    ),
    py(
      "writing Pyodide's runtime",
      `import js, pyodide_js\njs.Deno.writeTextFileSync(pyodide_js._api.config.indexURL + "pyodide.asm.mjs", "x")`,
    ),
    py(
      "writing Deno's module cache",
      `import js\njs.Deno.writeTextFileSync(${JSON.stringify(join(paths.denoDir, "poison.txt"))}, "x")`,
    ),
    py(
      "listing the server's run directories",
      `import js, os\nprint(list(js.Deno.readDirSync(os.path.dirname(js.Deno.cwd()))))`,
    ),
    py("signalling the server", `import js\njs.Deno.kill(js.Deno.ppid, "SIGKILL")`),
    py("input() reading the MCP stream", "input()", {
      check: (output) => assert.match(output.result.stderr, /EOFError/),
    }),
    py(
      "forged JSON-RPC on the host's stdout",
      `import js\njs.Deno.stdout.writeSync(js.TextEncoder.new().encode('{"jsonrpc":"2.0","id":1,"result":{}}\\n'))`,
      {
        check: ok,
      },
    ),
    py("sys.exit", "import sys\nsys.exit(0)", { check: ok }),
    py("os._exit", "import os\nos._exit(3)", { check: notOk }),
    py("a busy loop", "while True:\n    pass", { timeoutMs: 500 }),
    py(
      "a loop that swallows KeyboardInterrupt",
      "while True:\n    try:\n        while True: pass\n    except KeyboardInterrupt:\n        pass",
      { timeoutMs: 500 },
    ),
    py("a loop in C", "sum(range(10**15))", { timeoutMs: 500 }),
    py("deep recursion", "def f(n): return f(n + 1)\nf(0)"),
    py("a memory bomb", "b = []\nwhile True:\n    b.append(bytearray(64 * 1024 * 1024))"),
    py(
      "a disk filler through js.Deno",
      "import js\nfrom pyodide.ffi import to_js\nc = to_js(bytes(1 << 20))\ni = 0\n" +
        "while True:\n    js.Deno.writeFileSync(f'f{i}', c)\n    i += 1",
      { check: (output) => assert.equal(output.result.diskExceeded, true, output.text) },
    ),
    py("an output flood", "for i in range(200000): print('x' * 100)", {
      check: (output) => assert.equal(output.result.truncated, true),
    }),
  ];
}

const PROFILES: Profile[] = ["none", "net", "read-env"];

for (const profile of PROFILES) {
  Deno.test(`attack suite, profile: ${profile}`, async (t) => {
    const root = await Deno.makeTempDir({ prefix: "code-runner-attacks-" });
    const allowedDir = join(root, "allowed");
    const secretDir = join(root, "secret");
    await Deno.mkdir(allowedDir);
    await Deno.mkdir(secretDir);
    const secret = join(secretDir, "secret.txt");
    const secretModule = join(secretDir, "secret.ts");
    await Deno.writeTextFile(secret, SECRET_TEXT);
    await Deno.writeTextFile(secretModule, `export default ${JSON.stringify(SECRET_TEXT)};`);
    await Deno.writeTextFile(join(allowedDir, "shared.txt"), "shared with runs");
    const cacheDir = join(root, "package-cache");
    const canary = connectionCanary();
    const permissions = {
      none: "",
      net: "--allow-net",
      "read-env": `--allow-read=${allowedDir} --allow-env=CODE_RUNNER_TEST_VISIBLE`,
    }[profile];
    const server = await startServer({
      DENO_PERMISSION_ARGS: permissions,
      CANARY_SECRET: SECRET_ENV,
      CODE_RUNNER_TEST_VISIBLE: "visible",
      CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir,
      CODE_RUNNER_MEMORY_LIMIT_MB: "256",
      CODE_RUNNER_PYTHON_MEMORY_LIMIT_MB: "512",
      CODE_RUNNER_OUTPUT_LIMIT_BYTES: "8192",
      CODE_RUNNER_DISK_LIMIT_MB: "64",
    });
    const notifications: string[] = [];
    server.client.fallbackNotificationHandler = (notification) => {
      notifications.push(JSON.stringify(notification));
      return Promise.resolve();
    };
    const call = (tool: "js" | "py", code: string, timeoutMs = 10_000) =>
      tool === "js" ? server.js(code, { timeoutMs }) : server.py(code, { timeoutMs });
    const assertNoLeak = (text: string) => {
      for (const value of [SECRET_TEXT, SECRET_ENV]) {
        assert.ok(!text.includes(value), `a canary leaked: ${text.slice(0, 300)}`);
        assert.ok(!server.stderr().includes(value), "a canary leaked into the server's log");
        assert.ok(!notifications.some((n) => n.includes(value)), "a canary leaked into a notification");
      }
    };
    let count = 0;
    try {
      const denoDir = Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");
      for (const attack of attacks({ secret, secretModule, cacheDir, denoDir, port: canary.port })) {
        if (attack.skip?.includes(profile)) continue;
        count++;
        await t.step(`${attack.tool}: ${attack.name}`, async () => {
          if (attack.setup) assertNoLeak((await call(attack.tool, attack.setup)).text);
          const output = await call(attack.tool, attack.code, attack.timeoutMs);
          assertNoLeak(output.text + JSON.stringify(output.result));
          const granted = attack.grantedBy === "net" && profile === "net";
          if (attack.check) attack.check(output);
          else if (!granted) assert.equal(output.isError, true, `the attack got through:\n${output.text}`);
          await server.assertAlive();
          const python = await server.py("6 * 7");
          assert.equal(python.result.result, "42", `Python stopped answering: ${python.text}`);
        });
      }
      await t.step("the granted parts of the profile do work", async () => {
        const read = await server.js(
          `console.log(Deno.readTextFileSync(${JSON.stringify(join(allowedDir, "shared.txt"))}))`,
        );
        const env = await server.js(`console.log(Deno.env.get("CODE_RUNNER_TEST_VISIBLE"))`);
        assert.equal(read.result.status === "ok", profile === "read-env", read.text);
        assert.equal(env.result.status === "ok", profile === "read-env", env.text);
      });
      await t.step("the canary listener saw connections only where the network is granted", () => {
        if (profile === "net") assert.ok(canary.connections() > 0);
        else assert.equal(canary.connections(), 0);
      });
      await t.step("nothing was written into the package cache", async () => {
        for (const path of [join(cacheDir, "files", "evil.whl"), join(cacheDir, "snapshots", "evil.bin")]) {
          assert.equal(await Deno.stat(path).catch(() => null), null, path);
        }
      });
      assert.ok(count >= 60, `only ${count} attacks ran`);
    } finally {
      await server.close();
      canary.close();
      await Deno.remove(root, { recursive: true });
    }
  });
}
