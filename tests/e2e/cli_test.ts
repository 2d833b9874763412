/**
 * The human CLI: `run` a file or stdin through the sandbox, and `doctor`.
 */
import assert from "node:assert/strict";
import { BIN, serverEnv } from "../_helpers.ts";

async function cli(args: string[], stdin?: string, env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BIN, ...args],
    env: serverEnv(env),
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  return { code, stdout: new TextDecoder().decode(stdout), stderr: new TextDecoder().decode(stderr) };
}

Deno.test("run executes files and stdin in the sandbox and prints what happened", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("a TypeScript file, with its exit code", async () => {
      await Deno.writeTextFile(
        `${dir}/s.ts`,
        `const n: number = 6; console.log(n * 7); console.error("note"); Deno.exit(3);`,
      );
      const out = await cli(["run", `${dir}/s.ts`]);
      assert.equal(out.stdout, "42\n");
      assert.match(out.stderr, /note/);
      assert.equal(out.code, 3);
    });
    await t.step("a Python file, printing the last value", async () => {
      await Deno.writeTextFile(`${dir}/s.py`, `print("hello")\nsum(range(10))`);
      const out = await cli(["run", `${dir}/s.py`]);
      assert.equal(out.stdout, "hello\n45\n");
      assert.equal(out.code, 0);
    });
    await t.step("stdin, as JavaScript or --python", async () => {
      assert.equal((await cli(["run", "-"], "console.log('from stdin')")).stdout, "from stdin\n");
      assert.equal((await cli(["run", "-", "--python"], "print(2 ** 10)")).stdout, "1024\n");
    });
    await t.step("the sandbox holds: no host files", async () => {
      await Deno.writeTextFile(`${dir}/peek.ts`, `console.log(Deno.readTextFileSync("/etc/hostname"))`);
      const out = await cli(["run", `${dir}/peek.ts`]);
      assert.equal(out.code, 1);
      assert.match(out.stderr, /NotCapable|Requires read access/);
    });
    await t.step("a --timeout that is not a whole number of milliseconds is refused clearly", async () => {
      for (const value of ["abc", "1e15", "0", "2.5"]) {
        const out = await cli(["run", "-", "--timeout", value], "console.log(1)");
        assert.equal(out.code, 2, `${value}: ${out.stderr}`);
        assert.match(out.stderr, /--timeout must be a whole number of milliseconds/);
        assert.doesNotMatch(out.stderr, /at .*\.ts:\d+/, "no stack trace");
      }
    });
    await t.step("on a terminal, escape sequences from the sandbox are shown, not obeyed", async () => {
      // OSC 52 (clipboard), OSC 8 (link), a title and clear-screen, in output and in a file name.
      await Deno.writeTextFile(
        `${dir}/esc.ts`,
        `console.log("a\\x1b]52;c;ZXZpbA==\\x07b\\x1b]8;;http://x\\x07c\\x1b[2J\\x9bd");\n` +
          `console.error("e\\x1b]0;title\\x07f");\n` +
          `Deno.writeTextFileSync("output/n\\x1b[31m.txt", "x");`,
      );
      const { stdout } = await new Deno.Command("script", {
        args: ["-q", "-c", `${Deno.execPath()} run -A ${BIN} run ${dir}/esc.ts`, "/dev/null"],
        env: serverEnv(),
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).output();
      const shown = new TextDecoder().decode(stdout);
      assert.match(shown, /a\\x1b\]52;c;ZXZpbA==\\x07b/);
      assert.match(shown, /e\\x1b\]0;title\\x07f/);
      assert.match(shown, /\\x9bd/);
      assert.match(shown, /n\\x1b\[31m\.txt/);
      // deno-lint-ignore no-control-regex
      const controls = /[\x1b\x07\x9b]/;
      assert.ok(
        !controls.test(shown),
        `a control character reached the terminal: ${JSON.stringify(shown)}`,
      );
    });
    await t.step("a timeout is reported with a non-zero exit", async () => {
      const out = await cli(["run", "-", "--timeout", "300"], "while (true) {}");
      assert.equal(out.code, 1);
      assert.match(out.stderr, /timeout/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("doctor prints the configuration, caches and versions and checks the sources", async () => {
  const out = await cli(["doctor"], undefined, {
    CODE_RUNNER_PYODIDE_PACKAGES_URL: "http://127.0.0.1:1/pyodide/",
    CODE_RUNNER_PYPI_INDEX_URLS: "http://127.0.0.1:1/simple",
  });
  assert.match(out.stdout, /code-runner-mcp \d+\.\d+\.\d+ on Deno \d/);
  assert.match(out.stdout, /Pyodide 314\.0\.7/);
  assert.match(out.stdout, /permissions for runs: none/);
  assert.match(out.stdout, /package cache: /);
  assert.match(out.stdout, /Pyodide packages: http:\/\/127\.0\.0\.1:1\/pyodide\/pyodide-lock\.json ✗/);
  assert.match(out.stdout, /JavaScript sandbox: ✓ works/);
  assert.match(out.stdout, /Python sandbox: ✓ works/);
  assert.equal(out.code, 1, "unreachable sources make doctor fail");
});
