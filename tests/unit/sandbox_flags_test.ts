import assert from "node:assert/strict";
import { parsePermissionArgs } from "../../src/permissions.ts";
import { sandboxFlags } from "../../src/sandbox_flags.ts";

const paths = { workDir: "/t/runs/js-1", runsRoot: "/t/runs", sharedCaches: ["/cache/deno"] };
const own = [
  "--allow-read=/t/runs/js-1",
  "--allow-write=/t/runs/js-1",
  "--deny-read=/t/runs",
  "--deny-write=/t/runs,/cache/deno",
];

Deno.test("sandboxFlags() adds the run's directory and hides the server's", async (t) => {
  const table: Array<[string, string[]]> = [
    ["", own],
    ["--allow-net=example.com", ["--allow-net=example.com", ...own]],
    ["--allow-read=/data", ["--allow-read=/data", ...own]],
    // An unscoped grant would become scoped to the work dir once a path is added; `=/` keeps it broad.
    ["--allow-read --allow-write", ["--allow-read=/", "--allow-write=/", ...own]],
    ["-R --deny-read=/etc", ["--allow-read=/", "--deny-read=/etc", ...own]],
    // -A conflicts with --allow-read; the operator opted out of the sandbox, the cache stays read-only.
    ["-A", ["--allow-all", "--deny-write=/cache/deno"]],
  ];
  for (const [input, flags] of table) {
    await t.step(JSON.stringify(input), () => {
      assert.deepEqual(sandboxFlags(parsePermissionArgs(input), paths), flags);
    });
  }
});

Deno.test("sandboxFlags() grants the operator's workspace, writable only when configured", () => {
  const ro = sandboxFlags(parsePermissionArgs(""), { ...paths, workspace: { path: "/ws", writable: false } });
  assert.ok(ro.includes("--allow-read=/ws"));
  assert.ok(!ro.includes("--allow-write=/ws"));
  const rw = sandboxFlags(parsePermissionArgs(""), { ...paths, workspace: { path: "/ws", writable: true } });
  assert.ok(rw.includes("--allow-write=/ws"));
});
