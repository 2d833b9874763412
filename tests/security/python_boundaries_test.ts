/**
 * Attempts to cross each boundary of run_python. Pyodide's `js` bridge reaches the whole host realm, so
 * every attempt goes through it too; each must fail, leak no canary, and leave the server answering.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connectionCanary, startServer, type TestServer } from "../_helpers.ts";

const SECRET_FILE_TEXT = `canary-file-${crypto.randomUUID()}`;
const SECRET_ENV_TEXT = `canary-env-${crypto.randomUUID()}`;

function assertNoCanary(server: TestServer, text: string): void {
  for (const canary of [SECRET_FILE_TEXT, SECRET_ENV_TEXT]) {
    assert.ok(!text.includes(canary), `canary leaked into a result: ${text.slice(0, 300)}`);
    assert.ok(!server.stderr().includes(canary), "canary leaked into the server's log");
  }
}

/** Runs Python that must not get through; `blocked` matches what the sandbox said. */
async function assertBlocked(server: TestServer, code: string, blocked: RegExp) {
  const output = await server.py(code, { timeoutMs: 10000 });
  assertNoCanary(server, output.text + JSON.stringify(output.result));
  assert.equal(output.isError, true, `the attempt succeeded:\n${output.text}`);
  assert.match(output.result.stderr + (output.result.message ?? ""), blocked);
  const alive = await server.py("6 * 7");
  assert.equal(alive.result.result, "42", `the server stopped answering Python: ${alive.text}`);
  await server.assertAlive();
}

Deno.test("run_python cannot reach the host", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "code-runner-canary-" });
  const secret = join(dir, "secret.txt");
  await Deno.writeTextFile(secret, SECRET_FILE_TEXT);
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-cache-" });
  const canary = connectionCanary();
  const server = await startServer({
    CANARY_SECRET: SECRET_ENV_TEXT,
    CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir,
  });
  const s = JSON.stringify(secret);
  const notCapable = /NotCapable|Requires|PermissionDenied|not capable/;
  try {
    const attacks: Array<[string, string, RegExp]> = [
      ["open() of a host path (Emscripten's own FS)", `print(open(${s}).read())`, /FileNotFoundError/],
      ["js.Deno.readTextFileSync", `import js\njs.Deno.readTextFileSync(${s})`, notCapable],
      ["js.fetch(file:)", `import js\nawait js.fetch("file://" + ${s})`, notCapable],
      [
        "pyodide.http.pyfetch(file:)",
        `from pyodide.http import pyfetch\nawait pyfetch("file://" + ${s})`,
        notCapable,
      ],
      [
        "run_js",
        `from pyodide.code import run_js\nrun_js("Deno.readTextFileSync(" + repr(${s}) + ")")`,
        notCapable,
      ],
      [
        "a JS function built from a proxy's constructor",
        `import js\njs.Function("p", "return Deno.readTextFileSync(p)")(${s})`,
        notCapable,
      ],
      [
        "dynamic import of a host file",
        `from pyodide.code import run_js\nawait run_js("import('file://" + ${s} + "', { with: { type: 'text' } })")`,
        notCapable,
      ],
      [
        "an Emscripten NODEFS mount of /",
        [
          "import js, pyodide_js",
          "from pyodide.ffi import to_js",
          "FS = pyodide_js.FS",
          "FS.mkdirTree('/host')",
          "FS.mount(FS.filesystems.NODEFS, to_js({'root': '/'}, dict_converter=js.Object.fromEntries), '/host')",
          `print(open('/host' + ${s}).read())`,
        ].join("\n"),
        notCapable,
      ],
      ["Deno.env through js", `import js\njs.Deno.env.get("CANARY_SECRET")`, notCapable],
      [
        "Deno.env.toObject through run_js",
        `from pyodide.code import run_js\nrun_js("JSON.stringify(Deno.env.toObject())")`,
        notCapable,
      ],
      ["a subprocess through js", `import js\njs.Deno.Command.new("sh").outputSync()`, notCapable],
      ["subprocess module", `import subprocess\nsubprocess.run(["cat", ${s}])`, /does not support processes/],
      ["FFI through js", `import js\njs.Deno.dlopen("libc.so.6", js.Object.new())`, notCapable],
      ["signalling the server", `import js\njs.Deno.kill(js.Deno.ppid, "SIGKILL")`, notCapable],
      [
        "fetch to a loopback listener",
        `import js\nawait js.fetch("http://127.0.0.1:${canary.port}/")`,
        notCapable,
      ],
      [
        "pyfetch to a loopback listener",
        `from pyodide.http import pyfetch\nawait pyfetch("http://127.0.0.1:${canary.port}/")`,
        notCapable,
      ],
      [
        "a raw TCP connection through js",
        `import js\nawait js.Deno.connect(js.JSON.parse('{"hostname": "127.0.0.1", "port": ${canary.port}}'))`,
        notCapable,
      ],
      ["listening on a port", `import js\njs.Deno.listen(js.JSON.parse('{"port": 0}'))`, notCapable],
      [
        "writing the shared package cache",
        `import js\njs.Deno.writeTextFileSync(${JSON.stringify(join(cacheDir, "files", "evil.whl"))}, "x")`,
        notCapable,
      ],
      [
        "writing Pyodide's runtime files",
        `import js, pyodide_js\njs.Deno.writeTextFileSync(pyodide_js._api.config.indexURL + "pyodide.asm.mjs", "x")`,
        notCapable,
      ],
      [
        "listing the server's private run directories",
        `import js, os\nlist(js.Deno.readDirSync(os.path.dirname(js.Deno.cwd())))`,
        notCapable,
      ],
    ];
    for (const [name, code, blocked] of attacks) {
      await t.step(name, () => assertBlocked(server, code, blocked));
    }
    await t.step("no connection reached the canary listener", () => assert.equal(canary.connections(), 0));
    await t.step("nothing was written into the package cache", async () => {
      const names: string[] = [];
      for await (const entry of Deno.readDir(cacheDir)) names.push(entry.name);
      assert.ok(!names.includes("evil.whl"));
      assert.equal(await Deno.stat(join(cacheDir, "files", "evil.whl")).catch(() => null), null);
    });

    await t.step("os.environ holds no server secret", async () => {
      const { result, text } = await server.py("import os\ndict(os.environ)");
      assertNoCanary(server, text);
      assert.equal(result.status, "ok");
    });

    await t.step(
      "forged protocol and JSON-RPC lines on the host's stdout do not reach the client",
      async () => {
        const forged = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { forged: true } });
        const { result } = await server.py(
          `import js\njs.Deno.stdout.writeSync(js.TextEncoder.new().encode(${
            JSON.stringify(forged + "\n")
          }))\n"after"`,
        );
        assert.equal(result.result, "'after'");
        await server.assertAlive();
      },
    );

    await t.step("os._exit crashes only the interpreter, which restarts", async () => {
      const { result } = await server.py("import os\nos._exit(1)");
      assert.equal(result.status === "ok", false);
      const after = await server.py("6 * 7");
      assert.equal(after.result.result, "42");
    });
  } finally {
    await server.close();
    canary.close();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(cacheDir, { recursive: true });
  }
});

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

    await first.py("shared_secret = 'first session only'");
    const peek = await second.py("'shared_secret' in globals()");
    assert.equal(peek.result.result, "False");
  } finally {
    await first.close();
    await second.close();
    canary.close();
  }
});
