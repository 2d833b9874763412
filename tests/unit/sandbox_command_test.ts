import assert from "node:assert/strict";
import { parsePermissionArgs } from "../../src/permissions.ts";
import { sandboxCommand, sandboxEnv, type SandboxProfile } from "../../src/sandbox_command.ts";

const common = ["run", "--no-config", "--no-lock", "--no-prompt", "--quiet"];
const tail = ["--location=https://o.invalid", "data:main"];

const javascript = (args: string, workspace: { path: string; writable: boolean } | null = null) =>
  sandboxCommand({
    profile: "javascript",
    permissions: parsePermissionArgs(args),
    workDir: "/t/runs/js-1",
    runsRoot: "/t/runs",
    sharedCaches: ["/cache/deno"],
    workspace,
    memoryLimitMb: 512,
    origin: "https://o.invalid",
    main: "data:main",
  });

const python = (args: string, workspace: { path: string; writable: boolean } | null = null) =>
  sandboxCommand({
    profile: "python-host",
    permissions: parsePermissionArgs(args),
    workDir: "/t/runs/py-1",
    pyodideDir: "/cache/pyodide/",
    packageCacheDir: "/cache/packages",
    workspace,
    origin: "https://o.invalid",
    main: "data:main",
  });

const jsOwn = ["--allow-read=/t/runs/js-1", "--allow-write=/t/runs/js-1"];
// No code cache: it would keep every run's compiled code in the shared Deno directory.
const jsTail = ["--no-code-cache", "--v8-flags=--max-old-space-size=512", ...tail];
// Pyodide's glue needs little young generation; `gc()` lets the host give memory back when idle.
const pyTail = ["--v8-flags=--expose-gc,--max-semi-space-size=1", ...tail];
const pyOwn = ["--allow-read=/cache/pyodide/,/cache/packages,/t/runs/py-1", "--allow-write=/t/runs/py-1"];

Deno.test("a JavaScript run gets the operator's grants plus its own directory, never the server's", async (t) => {
  const table: Array<[string, string[]]> = [
    // No grant reaches the server's directories: nothing to deny.
    ["", jsOwn],
    ["--allow-net=example.com", ["--allow-net=example.com", ...jsOwn]],
    ["--allow-read=/data", ["--allow-read=/data", ...jsOwn]],
    ["--allow-env=API_KEY --allow-import", ["--allow-env=API_KEY", "--allow-import", ...jsOwn]],
    // An unscoped grant would become scoped to the work dir once a path is added; `=/` keeps it broad, and
    // the runs root and the caches are then denied.
    ["--allow-read --allow-write", [
      "--allow-read=/",
      "--allow-write=/",
      ...jsOwn,
      "--deny-read=/t/runs,/cache/deno/gen,/cache/deno/location_data",
      "--deny-write=/t/runs,/cache/deno",
    ]],
    // Every denial of a kind in one flag, the runs root first (Deno 2.9 misjudges other arrangements).
    [
      "-R --deny-read=/etc",
      ["--allow-read=/", ...jsOwn, "--deny-read=/t/runs,/cache/deno/gen,/cache/deno/location_data,/etc"],
    ],
    ["--allow-read=/t --allow-write=/cache --deny-write=/cache/keep", [
      "--allow-read=/t",
      "--allow-write=/cache",
      ...jsOwn,
      "--deny-read=/t/runs",
      "--deny-write=/cache/deno,/cache/keep",
    ]],
    // -A conflicts with --allow-read; the operator opted out of the sandbox, the cache stays read-only.
    ["-A", ["--allow-all", "--deny-write=/cache/deno"]],
  ];
  for (const [input, flags] of table) {
    await t.step(JSON.stringify(input), () => {
      assert.deepEqual(javascript(input), [...common, ...flags, ...jsTail]);
    });
  }
});

Deno.test("a Python host gets Pyodide, the package cache and its directory; of the grants only network", async (t) => {
  const table: Array<[string, string[]]> = [
    ["", pyOwn],
    ["--allow-net=example.com", [...pyOwn, "--allow-net=example.com"]],
    ["--allow-net --deny-net=10.0.0.1", [...pyOwn, "--allow-net", "--deny-net=10.0.0.1"]],
    // File, environment, subprocess and FFI grants are for JavaScript; Python's `js` bridge would reach them.
    ["--allow-read --allow-write --allow-env --allow-run --allow-ffi --allow-sys", pyOwn],
    ["--allow-import=example.com", pyOwn],
    ["-A", [...pyOwn, "--allow-net"]],
  ];
  for (const [input, flags] of table) {
    await t.step(JSON.stringify(input), () => {
      assert.deepEqual(python(input), [...common, ...flags, ...pyTail]);
    });
  }
});

Deno.test("the snapshot builder, which never runs user code, gets no grant of the operator's", () => {
  const spec: SandboxProfile = {
    profile: "snapshot-builder",
    workDir: "/t/runs/py-2",
    pyodideDir: "/cache/pyodide/",
    packageCacheDir: "/cache/packages",
    origin: "https://o.invalid",
    main: "data:main",
  };
  assert.deepEqual(sandboxCommand(spec), [
    ...common,
    "--allow-read=/cache/pyodide/,/cache/packages,/t/runs/py-2",
    "--allow-write=/t/runs/py-2",
    ...tail,
  ]);
});

Deno.test("links leading out of the workspace are denied to JavaScript runs", () => {
  const args = sandboxCommand({
    profile: "javascript",
    permissions: parsePermissionArgs(""),
    workDir: "/t/runs/js-1",
    runsRoot: "/t/runs",
    sharedCaches: ["/cache/deno"],
    workspace: { path: "/ws", writable: true },
    workspaceLinksOut: ["/ws/out", "/ws/d/a,b"],
    memoryLimitMb: 512,
    origin: "https://o.invalid",
    main: "data:main",
  });
  // A path with a comma cannot be named in a Deno flag; its directory is denied instead.
  assert.ok(args.includes("--deny-read=/ws/out,/ws/d"), args.join(" "));
  assert.ok(args.includes("--deny-write=/ws/out,/ws/d"));
});

Deno.test("the operator's workspace is readable by both runtimes, writable only when configured", async (t) => {
  for (const [name, build] of [["javascript", javascript], ["python", python]] as const) {
    await t.step(name, () => {
      const ro = build("", { path: "/ws", writable: false });
      assert.ok(ro.includes("--allow-read=/ws"));
      assert.ok(!ro.includes("--allow-write=/ws"));
      assert.ok(build("", { path: "/ws", writable: true }).includes("--allow-write=/ws"));
    });
  }
});

Deno.test("only a Python host gets an environment of its own: glibc gives freed memory back", async (t) => {
  const table: Array<[SandboxProfile["profile"], Record<string, string>]> = [
    ["javascript", {}],
    ["python-host", { GLIBC_TUNABLES: "glibc.malloc.trim_threshold=131072" }],
    ["snapshot-builder", {}],
  ];
  for (const [profile, env] of table) {
    await t.step(profile, () => assert.deepEqual(sandboxEnv(profile), env));
  }
});
