/**
 * run_python end to end: the real bin over stdio, an SDK client, packages from a loopback mirror that plays
 * the Pyodide distribution and a PyPI simple index, configured as a firewalled user would.
 */
import assert from "node:assert/strict";
import { childPids, eventually, processesWith, startServer, type TestServer } from "../_helpers.ts";
import { type Mirror, startMirror } from "../_mirror.ts";

function pythonEnv(mirror: Mirror, cacheDir: string, extra: Record<string, string> = {}) {
  return {
    CODE_RUNNER_PYODIDE_PACKAGES_URL: mirror.pyodideUrl,
    CODE_RUNNER_PYPI_INDEX_URLS: mirror.indexUrl,
    CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir,
    ...extra,
  };
}

Deno.test("run_python through a real MCP client", async (t) => {
  const mirror = await startMirror();
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-wheels-" });
  let server: TestServer | null = await startServer(
    pythonEnv(mirror, cacheDir, {
      CODE_RUNNER_OUTPUT_LIMIT_BYTES: "2048",
      CODE_RUNNER_PYTHON_MEMORY_LIMIT_MB: "600",
    }),
  );
  try {
    const s = server;
    await t.step("lists the tool with its state model, packages and limits", async () => {
      const { tools } = await s.client.listTools();
      const tool = tools.find((candidate) => candidate.name === "run_python");
      assert.ok(tool);
      const description = tool.description ?? "";
      assert.match(description, /State persists between calls/);
      assert.match(description, /reset: true/);
      assert.match(description, /stateReset/);
      assert.match(description, /PEP 723/);
      assert.match(description, /600 MiB/);
      assert.match(description, /network: none/);
      assert.deepEqual(Object.keys(tool.inputSchema.properties ?? {}).sort(), [
        "code",
        "packages",
        "reset",
        "timeout_ms",
      ]);
      assert.ok(tool.outputSchema?.properties?.result);
      assert.equal(tool.annotations?.openWorldHint, false, "no network for code without --allow-net");
      assert.equal(tool.annotations?.destructiveHint, false);
    });

    await t.step("prints, and returns the last expression as repr and JSON", async () => {
      const { result, isError, text } = await s.py(
        `print("hello")\nimport sys\nprint("warn", file=sys.stderr)\n{"a": [1, 2.5, None]}`,
      );
      assert.equal(isError, false, text);
      assert.equal(result.status, "ok");
      assert.equal(result.stdout, "hello\n");
      assert.equal(result.stderr, "warn\n");
      assert.equal(result.result, "{'a': [1, 2.5, None]}");
      assert.deepEqual(result.resultJson, { a: [1, 2.5, null] });
      assert.match(text, /--- result ---\n\{'a'/);
      const none = await s.py("x = 1");
      assert.equal(none.result.result, undefined);
      const custom = await s.py("class P:\n    def __repr__(self): return 'P()'\nP()");
      assert.equal(custom.result.result, "P()");
      assert.equal(custom.result.resultJson, undefined);
    });

    await t.step("IPython-style reprs come back as images and text", async () => {
      const code = [
        "import struct, zlib",
        "def png(w, h, rgb):",
        "    raw = b''.join(b'\\x00' + bytes(rgb) * w for _ in range(h))",
        "    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))",
        "    return (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))",
        "            + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))",
        "class Swatch:",
        "    def _repr_png_(self): return png(4, 4, (255, 0, 0))",
        "    def _repr_html_(self): return '<b>red</b>'",
        "    def __repr__(self): return 'Swatch()'",
        "Swatch()",
      ].join("\n");
      const response = await s.client.callTool({ name: "run_python", arguments: { code } });
      const content = response.content as Array<
        { type: string; data?: string; mimeType?: string; text?: string }
      >;
      const image = content.find((item) => item.type === "image");
      assert.equal(image?.mimeType, "image/png", JSON.stringify(content).slice(0, 300));
      const bytes = Uint8Array.from(atob(image?.data ?? ""), (c) => c.charCodeAt(0));
      assert.deepEqual([...bytes.slice(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
      assert.ok(content.some((item) => item.type === "text" && item.text === "<b>red</b>"));
      const svg = await s.client.callTool({
        name: "run_python",
        arguments: { code: "class V:\n    def _repr_svg_(self): return '<svg/>'\nV()" },
      });
      const resource = (svg.content as Array<{ type: string; resource?: { mimeType: string; text: string } }>)
        .find((item) => item.type === "resource");
      assert.deepEqual(resource?.resource, {
        uri: "output:///display-1",
        mimeType: "image/svg+xml",
        text: "<svg/>",
      });
    });

    await t.step(
      "a repr hook or a figure that fails is the code's error, not the interpreter's",
      async () => {
        await s.py("kept = 'state'");
        const hook = await s.py(
          "class Loud:\n    def _repr_png_(self):\n        raise SystemExit(3)\n" +
            "    def __repr__(self):\n        raise KeyError('no repr')\nLoud()",
        );
        assert.notEqual(hook.result.status, "crashed", hook.text);
        assert.equal(hook.result.stateReset, false, hook.text);
        // matplotlib's pyplot as the display code sees it, with a figure whose savefig fails.
        const figure = await s.py(
          "import sys, types\nclass Figure:\n    def savefig(self, *a, **k):\n        raise BaseException('savefig failed')\n" +
            "sys.modules['matplotlib.pyplot'] = types.SimpleNamespace(get_fignums=lambda: [1], " +
            "figure=lambda n: Figure(), close=lambda *a: None)\n1",
        );
        assert.equal(figure.result.status, "error", figure.text);
        assert.match(figure.result.stderr, /savefig failed/);
        assert.equal(figure.result.stateReset, false);
        await s.py("del sys.modules['matplotlib.pyplot']");
        assert.equal((await s.py("kept")).result.result, "'state'");
      },
    );

    await t.step("top-level await works", async () => {
      const { result } = await s.py("import asyncio\nawait asyncio.sleep(0.01)\n'awaited'");
      assert.equal(result.result, "'awaited'");
    });

    await t.step("state persists between calls, and reset clears it", async () => {
      await s.py("counter = 41\nimport json\nopen('notes.txt', 'w').write('kept')");
      const kept = await s.py("counter += 1\n(counter, json.dumps([1]), open('notes.txt').read())");
      assert.equal(kept.result.result, "(42, '[1]', 'kept')");
      const reset = await s.py("'counter' in globals()", { reset: true });
      assert.equal(reset.result.result, "False");
      assert.equal(reset.result.stateReset, true);
      const gone = await s.py("import os\nos.path.exists('notes.txt')");
      assert.equal(gone.result.result, "False");
    });

    await t.step(
      "an exception gives the user's traceback, keeps earlier output, and is an error",
      async () => {
        const { result, isError } = await s.py(`print("before")\ndef f():\n    return 1 / 0\nf()`);
        assert.equal(isError, true);
        assert.equal(result.status, "error");
        assert.equal(result.stdout, "before\n");
        assert.match(result.stderr, /File "<code>", line 4, in <module>/);
        assert.match(result.stderr, /File "<code>", line 3, in f/);
        assert.match(result.stderr, /ZeroDivisionError: division by zero/);
        assert.doesNotMatch(
          result.stderr,
          /_pyodide|pyodide\/|eval_code|<exec>/,
          "no Pyodide-internal frames",
        );
        assert.match(result.message ?? "", /ZeroDivisionError/);
        const syntax = await s.py("def (:");
        assert.equal(syntax.result.status, "error");
        assert.match(syntax.result.stderr, /SyntaxError/);
        const exit = await s.py("import sys\nsys.exit(3)");
        assert.equal(exit.result.status, "error");
        assert.match(exit.result.stderr, /SystemExit: 3/);
        await s.assertAlive();
      },
    );

    await t.step("input() and sys.stdin get EOF, never the protocol stream", async () => {
      const { result } = await s.py(
        "try:\n    input('name? ')\nexcept EOFError as e:\n    print('EOF')\nimport sys\nrepr(sys.stdin.read())",
      );
      assert.equal(result.stdout, "name? EOF\n");
      assert.equal(result.result, `"''"`);
    });

    await t.step("output is capped with a marker", async () => {
      const { result } = await s.py("for i in range(10000): print('line', i)");
      assert.equal(result.truncated, true);
      assert.match(result.stdout, /output truncated: \d+ bytes left out here/);
      assert.ok(result.stdout.length < 2300);
    });

    await t.step("a pure-Python loop times out with KeyboardInterrupt and keeps the state", async () => {
      await s.py("survivor = 'still here'");
      const { result, isError } = await s.py("print('spinning')\nwhile True:\n    pass", { timeoutMs: 800 });
      assert.equal(isError, true);
      assert.equal(result.status, "timeout");
      assert.equal(result.timedOut, true);
      assert.equal(result.stateReset, false);
      assert.equal(result.stdout, "spinning\n");
      assert.match(result.message ?? "", /KeyboardInterrupt/);
      const after = await s.py("survivor");
      assert.equal(after.result.result, "'still here'");
    });

    await t.step(
      "code that swallows KeyboardInterrupt is killed, restarted, and says the state is gone",
      async () => {
        const { result } = await s.py(
          "while True:\n    try:\n        while True:\n            pass\n    except KeyboardInterrupt:\n        pass",
          { timeoutMs: 500 },
        );
        assert.equal(result.status, "timeout");
        assert.equal(result.stateReset, true);
        assert.match(result.message ?? "", /state|gone/i);
        const after = await s.py("'survivor' in globals()");
        assert.equal(after.result.result, "False");
        await s.assertAlive();
      },
    );

    await t.step("a loop in C code is killed and the next call works", async () => {
      const { result } = await s.py("sum(range(10**15))", { timeoutMs: 500 });
      assert.equal(result.status, "timeout");
      assert.equal(result.stateReset, true);
      const after = await s.py("6 * 7");
      assert.equal(after.result.result, "42");
    });

    await t.step("a memory bomb is stopped and the session recovers", async () => {
      const { result, isError } = await s.py(
        "blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 1024 * 1024))",
      );
      assert.equal(isError, true);
      assert.ok(
        result.memoryExceeded || /MemoryError/.test(result.stderr),
        `neither killed for memory nor MemoryError: ${JSON.stringify(result).slice(0, 400)}`,
      );
      const after = await s.py("1 + 1");
      assert.equal(after.result.result, "2");
    });

    await t.step("memory-limit crashes leave no interpreter behind", async () => {
      const hosts = () => pythonHosts(s.pid).length;
      for (let i = 0; i < 3; i++) {
        const { result } = await s.py(
          "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))",
        );
        assert.equal(result.status, "crashed", JSON.stringify(result).slice(0, 300));
        assert.equal(result.stateReset, true);
      }
      // The session's interpreter and its spare, nothing more.
      assert.ok(await eventually(() => hosts() <= 2, 15000), `${hosts()} Python processes after 3 crashes`);
      assert.doesNotMatch(s.stderr(), /an idle Python process exited/, "a busy interpreter is not idle");
      await s.assertAlive();
    });

    await t.step("a cancel that costs the session its state says so on the next result", async () => {
      await s.py("kept = 1");
      // A loop in C code ignores KeyboardInterrupt, so the cancel ends in a kill.
      const controller = new AbortController();
      const cancelled = s.py("sum(range(10**15))", { signal: controller.signal });
      setTimeout(() => controller.abort(), 1000);
      await assert.rejects(cancelled);
      const next = await s.py("kept");
      assert.equal(next.result.stateReset, true, "the state was lost and the result must say so");
      assert.match(next.result.stderr, /NameError/);
      // After that, the state of the new interpreter is the session's: no second reset is reported.
      await s.py("kept = 2");
      const again = await s.py("kept");
      assert.equal(again.result.stateReset, false);
      assert.equal(again.result.result, "2");
    });

    await t.step("a cancel that Python handles keeps the state and reports no reset", async () => {
      const controller = new AbortController();
      const cancelled = s.py("while True:\n    pass", { signal: controller.signal });
      setTimeout(() => controller.abort(), 500);
      await assert.rejects(cancelled);
      const next = await s.py("kept");
      assert.equal(next.result.stateReset, false);
      assert.equal(next.result.result, "2");
    });

    await t.step("calls in one session queue and never mix their output", async () => {
      const calls = ["a", "b", "c"].map((tag) =>
        s.py(
          `import asyncio\nfor i in range(5):\n    print("${tag}", i)\n    await asyncio.sleep(0.02)\n"${tag}"`,
        )
      );
      const results = await Promise.all(calls);
      for (const [index, tag] of ["a", "b", "c"].entries()) {
        const { result } = results[index] as { result: { stdout: string; result?: string } };
        assert.equal(result.result, `'${tag}'`);
        assert.deepEqual(result.stdout.trim().split("\n"), [0, 1, 2, 3, 4].map((i) => `${tag} ${i}`));
      }
    });

    await t.step("a distribution package loads through Pyodide's loader from the mirror", async () => {
      const { result, text } = await s.py("import six\nsix.__version__");
      assert.equal(result.result, "'1.17.0'", text);
      assert.deepEqual(result.installed, ["six"]);
      assert.ok(mirror.requests.includes("/pyodide/six-1.17.0-py2.py3-none-any.whl"));
    });

    await t.step("a wheel whose sha256 does not match its index is refused and never cached", async () => {
      mirror.corrupt = true;
      try {
        const { result, isError } = await s.py("import humanize");
        assert.equal(isError, true);
        assert.match(result.message ?? "", /sha256/);
      } finally {
        mirror.corrupt = false;
      }
    });

    await t.step("an import is installed automatically, with progress, outside the time limit", async () => {
      const messages: string[] = [];
      // The download alone takes longer than the call's timeout; only the execution counts.
      mirror.delayMs = 1500;
      const { result, text } = await s.py("import humanize\nhumanize.intcomma(1234567)", {
        onprogress: (progress) => messages.push(progress.message ?? ""),
        timeoutMs: 1000,
      }).finally(() => mirror.delayMs = 0);
      assert.equal(result.status, "ok", text);
      assert.equal(result.result, "'1,234,567'", text);
      assert.ok(messages.some((m) => /humanize/.test(m)), `progress: ${messages.join(" | ")}`);
      assert.ok(mirror.requests.includes("/simple/humanize/"));
    });

    await t.step("explicit packages install with their dependencies", async () => {
      const { result, text } = await s.py("from slugify import slugify\nslugify('Héllo Wörld')", {
        packages: ["python-slugify==9.2.0"],
      });
      assert.equal(result.result, "'hello-world'", text);
      assert.ok(
        mirror.requests.includes("/files/text_unidecode-1.3-py2.py3-none-any.whl"),
        "the dependency came too",
      );
    });

    await t.step("PEP 723 inline metadata is honoured", async () => {
      const code = [
        "# /// script",
        '# dependencies = ["text-unidecode>=1.3"]',
        "# ///",
        "from importlib.metadata import version",
        "version('text-unidecode')",
      ].join("\n");
      const { result, text } = await s.py(code, { reset: true });
      assert.equal(result.result, "'1.3'", text);
    });

    await t.step("a missing package is reported with what to do, and the code does not run", async () => {
      const { result, isError } = await s.py("import no_such_package_here\nprint('ran')");
      assert.equal(isError, true);
      assert.equal(result.status, "error");
      assert.equal(result.stdout, "");
      assert.match(result.message ?? "", /no_such_package_here|no-such-package-here/);
      assert.match(result.message ?? "", /packages/);
      await s.assertAlive();
    });

    await t.step("the Python process is started ahead of the first call", () => {
      assert.ok(processesWith("async%20function%20host(").length >= 1);
    });

    await server.close();
    server = null;

    await t.step("after a restart, cached packages install with the mirror stopped", async () => {
      await mirror.stop();
      const again = await startServer(pythonEnv(mirror, cacheDir));
      try {
        const { result, text } = await again.py(
          "import six, humanize\nfrom slugify import slugify\n(six.__version__, humanize.intcomma(1000), slugify('a b'))",
          { packages: ["python-slugify"] },
        );
        assert.equal(result.result, "('1.17.0', '1,000', 'a-b')", text);
      } finally {
        await again.close();
      }
    });
  } finally {
    await server?.close();
    await mirror.stop().catch(() => {});
    await Deno.remove(cacheDir, { recursive: true });
  }
  assert.ok(
    await eventually(() => processesWith(cacheDir).length === 0),
    "a Python process outlived its server",
  );
});

/** The Python host processes of server `pid`. */
function pythonHosts(pid: number): number[] {
  return childPids(pid).filter((child) => {
    try {
      return Deno.readTextFileSync(`/proc/${child}/cmdline`).includes("/pyodide/");
    } catch {
      return false;
    }
  });
}
