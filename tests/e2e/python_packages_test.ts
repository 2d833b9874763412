/**
 * Python packages the way users write them, end to end through the real bin: optional imports that cannot be
 * installed never block, code that runs micropip itself uses the configured index, explicit requests stay
 * strict, and packages install where only the package index is reachable — behind the loopback mirror, and
 * once with the default configuration against PyPI (the Pyodide CDN may be unreachable there).
 */
import assert from "node:assert/strict";
import { BIN, eventually, processesWith, serverEnv, startServer } from "../_helpers.ts";
import { type Mirror, startMirror } from "../_mirror.ts";

function mirrorEnv(mirror: Mirror, cacheDir: string, extra: Record<string, string> = {}) {
  return {
    CODE_RUNNER_PYODIDE_PACKAGES_URL: mirror.pyodideUrl,
    CODE_RUNNER_PYPI_INDEX_URLS: mirror.indexUrl,
    CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir,
    ...extra,
  };
}

/** A loopback URL nothing answers at (a port that was free a moment ago). */
function unreachableUrl(path: string): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return `http://127.0.0.1:${port}${path}`;
}

Deno.test("imports install best effort; micropip in code and explicit packages behind the mirror", async (t) => {
  const mirror = await startMirror();
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-packages-" });
  const server = await startServer(mirrorEnv(mirror, cacheDir));
  try {
    await t.step("the code's own micropip.install() uses the configured index, with progress", async () => {
      const messages: string[] = [];
      // Written so the import detector cannot see what is installed: only the code's micropip can get it.
      const { result, text } = await server.py(
        [
          "import importlib, micropip",
          'await micropip.install("humanize")',
          'humanize = importlib.import_module("human" + "ize")',
          '(humanize.intcomma(1234567), "humanize" in micropip.list())',
        ].join("\n"),
        { onprogress: (progress) => messages.push(progress.message ?? "") },
      );
      assert.equal(result.status, "ok", text);
      assert.equal(result.result, "('1,234,567', True)", text);
      assert.ok(mirror.requests.includes("/simple/humanize/"), mirror.requests.join(" "));
      assert.ok(messages.includes("Installing humanize"), `progress: ${messages.join(" | ")}`);
      const removed = await server.py(
        'micropip.uninstall("humanize")\nimport importlib.metadata\n' +
          "try:\n    importlib.metadata.version('humanize')\nexcept importlib.metadata.PackageNotFoundError:\n" +
          "    print('uninstalled')\n'humanize' in micropip.list()",
      );
      assert.equal(removed.result.result, "False", removed.text);
      assert.match(removed.result.stdout, /uninstalled/);
    });

    await t.step("micropip.install() then `from slugify import slugify`, as users write it", async () => {
      const { result, text } = await server.py(
        'import micropip\nawait micropip.install("python-slugify")\nfrom slugify import slugify\nslugify("Héllo Wörld")',
        { reset: true },
      );
      assert.equal(result.status, "ok", text);
      assert.equal(result.result, "'hello-world'", text);
      assert.equal(result.message, undefined, "nothing failed to install");
    });

    await t.step("a module name that is not its PyPI name is resolved", async () => {
      const { result, text } = await server.py("from slugify import slugify\nslugify('a b')", {
        reset: true,
      });
      assert.equal(result.result, "'a-b'", text);
      assert.deepEqual(result.installed, ["python-slugify"]);
    });

    await t.step("the fallback idiom runs when the optional package cannot be installed", async () => {
      // ujson is in Pyodide's lock file but not on the mirror.
      const { result, text, isError } = await server.py(
        "try:\n    import ujson as json\nexcept ImportError:\n    import json\nprint(json.dumps([1]))",
      );
      assert.equal(isError, false, text);
      assert.equal(result.status, "ok", text);
      assert.equal(result.stdout, "[1]\n");
      assert.match(result.message ?? "", /Could not install ujson \(.*404.*\)\. The code ran without it\./);
      assert.match(result.stderr, /^Could not install ujson \(imported by the code\): .*404/m);
      assert.doesNotMatch(result.stderr, /Loading|Failed to load/, "the loader's chatter is progress");
    });

    await t.step("imports under `if` or in a function that never runs do not block", async () => {
      const { result, text } = await server.py(
        "if False:\n    import not_here_first\ndef later():\n    import not_here_second\nprint('ran')",
      );
      assert.equal(result.status, "ok", text);
      assert.equal(result.stdout, "ran\n");
      assert.match(result.message ?? "", /not_here_first/);
    });

    await t.step("a guessed import that fails lets the code run; its error says why", async () => {
      const { result, text } = await server.py("print('ran')\nimport not_here_at_all\nprint('after')");
      assert.equal(result.status, "error", text);
      assert.equal(result.stdout, "ran\n");
      assert.match(result.stderr, /ModuleNotFoundError: No module named 'not_here_at_all'/);
      assert.match(
        result.message ?? "",
        /ModuleNotFoundError: No module named 'not_here_at_all'.*not_here_at_all could not be installed: .*`packages`/,
      );
      await server.assertAlive();
    });

    await t.step("explicit packages that cannot be installed stop the code with a clear error", async () => {
      const { result, text } = await server.py("print('ran')", { packages: ["not-here-anywhere"] });
      assert.equal(result.status, "error", text);
      assert.equal(result.stdout, "");
      assert.match(
        result.message ?? "",
        /^Could not install what the call asks for, so the code did not run\./,
      );
      assert.match(result.message ?? "", /not-here-anywhere/);
    });

    await t.step("PEP 723 dependencies that cannot be installed stop the code too", async () => {
      const code = '# /// script\n# dependencies = ["not-here-either"]\n# ///\nprint("ran")';
      const { result, text } = await server.py(code);
      assert.equal(result.status, "error", text);
      assert.equal(result.stdout, "");
      assert.match(result.message ?? "", /did not run.*not-here-either/);
    });
  } finally {
    await server.close();
    await mirror.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
  assert.ok(
    await eventually(() => processesWith(cacheDir).length === 0),
    "a Python process outlived its server",
  );
});

Deno.test("with Pyodide's distribution unreachable, micropip and pure-Python packages come from the index", async (t) => {
  const mirror = await startMirror();
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-packages-" });
  const env = mirrorEnv(mirror, cacheDir, { CODE_RUNNER_PYODIDE_PACKAGES_URL: unreachableUrl("/pyodide/") });
  const server = await startServer(env);
  try {
    await t.step("a distribution package and a PyPI package install from the index", async () => {
      const { result, text } = await server.py(
        "import six, humanize\n(six.__version__, humanize.intcomma(1000))",
      );
      assert.equal(result.result, "('1.17.0', '1,000')", text);
      assert.ok(
        mirror.requests.includes("/files/micropip-0.11.1-py3-none-any.whl"),
        mirror.requests.join(" "),
      );
      assert.ok(mirror.requests.includes("/files/six-1.17.0-py2.py3-none-any.whl"));
    });

    await t.step(
      "a package built for Pyodide says the distribution is unreachable and what to set",
      async () => {
        const { result, text } = await server.py("import numpy");
        assert.equal(result.status, "error", text);
        assert.match(result.message ?? "", /ModuleNotFoundError: No module named 'numpy'/);
        assert.match(
          result.message ?? "",
          /distribution at http:\/\/127\.0\.0\.1:\d+\/pyodide\/ cannot be reached/,
        );
        assert.match(result.message ?? "", /CODE_RUNNER_PYODIDE_PACKAGES_URL/);
      },
    );

    await t.step("doctor says which way packages come", async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", BIN, "doctor"],
        env: serverEnv(env),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      });
      const { stdout } = await child.output();
      const text = new TextDecoder().decode(stdout);
      assert.match(text, /Pyodide packages: http:\/\/127\.0\.0\.1:\d+\/pyodide\/pyodide-lock\.json ✗/);
      assert.match(text, /package index: .*✓ reachable/);
      assert.match(
        text,
        /Python packages: the Pyodide distribution is unreachable, so micropip and pure-Python/,
      );
    });
  } finally {
    await server.close();
    await mirror.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

/**
 * A proxy that refuses everything and notes what was asked of it: with HTTP(S)_PROXY pointing here, a server
 * has no network, and the notes show whether it tried to use any.
 */
function refusingProxy(): { url: string; requests: string[]; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      const buffer = new Uint8Array(1024);
      const read = await conn.read(buffer).catch(() => null);
      requests.push(new TextDecoder().decode(buffer.subarray(0, read ?? 0)).split("\r\n")[0] ?? "");
      await conn.write(new TextEncoder().encode("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"))
        .catch(() => {});
      conn.close();
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    requests,
    close: async () => {
      listener.close();
      await serving;
    },
  };
}

Deno.test("the default configuration installs from PyPI, and a new server reuses the cache offline", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-pypi-" });
  // A small pure-Python package without dependencies, not in Pyodide's distribution.
  const code = "import inflection\ninflection.underscore('DeviceType')";
  const proxy = refusingProxy();
  try {
    const first = await startServer({ CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir });
    try {
      const { result, text } = await first.py(code);
      assert.equal(result.result, "'device_type'", text);
      assert.deepEqual(result.installed, ["inflection"]);
    } finally {
      await first.close();
    }
    const offline = {
      CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir,
      HTTPS_PROXY: proxy.url,
      HTTP_PROXY: proxy.url,
      NO_PROXY: "",
    };
    const second = await startServer(offline);
    try {
      const { result, text } = await second.py(code);
      assert.equal(result.result, "'device_type'", text);
      assert.deepEqual(result.installed, ["inflection"]);
    } finally {
      await second.close();
    }
    assert.deepEqual(
      proxy.requests.filter((line) => /pypi|pythonhosted/.test(line)),
      [],
      "the second server asked PyPI for nothing",
    );
  } finally {
    await proxy.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});
