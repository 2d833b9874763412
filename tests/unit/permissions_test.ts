import assert from "node:assert/strict";
import {
  describePermissions,
  parsePermissionArgs,
  PermissionArgsError,
  splitShellWords,
} from "../../src/permissions.ts";

Deno.test("parsePermissionArgs() accepts permission flags and writes them in long form", async (t) => {
  const table: Array<[string, string[]]> = [
    ["", []],
    ["   ", []],
    ["-A", ["--allow-all"]],
    ["--allow-all", ["--allow-all"]],
    ["-R -W -N -E -S -I", [
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--allow-sys",
      "--allow-import",
    ]],
    ["--allow-read=/data,/srv", ["--allow-read=/data,/srv"]],
    [`--allow-read="/my data"`, ["--allow-read=/my data"]],
    [`'--allow-write=/it''s'`, ["--allow-write=/its"]],
    [`--allow-read=/a\\ b`, ["--allow-read=/a b"]],
    ["--allow-net=example.com:443 --deny-net=evil.example", [
      "--allow-net=example.com:443",
      "--deny-net=evil.example",
    ]],
    ["--allow-run=git --allow-ffi --deny-env=SECRET --allow-import=cdn.example", [
      "--allow-run=git",
      "--allow-ffi",
      "--deny-env=SECRET",
      "--allow-import=cdn.example",
    ]],
    ["--deny-read --deny-write=/etc --deny-sys --deny-run --deny-ffi --deny-import", [
      "--deny-read",
      "--deny-write=/etc",
      "--deny-sys",
      "--deny-run",
      "--deny-ffi",
      "--deny-import",
    ]],
    ["\t--allow-env=A_*\n", ["--allow-env=A_*"]],
  ];
  for (const [input, flags] of table) {
    await t.step(JSON.stringify(input), () => {
      assert.deepEqual(parsePermissionArgs(input).flags, flags);
    });
  }
});

Deno.test("parsePermissionArgs() rejects anything but permission flags, naming the token", async (t) => {
  const table: Array<[string, RegExp]> = [
    ["--inspect", /--inspect/],
    ["--inspect-brk=0.0.0.0:9229", /--inspect-brk/],
    ["--v8-flags=--allow-natives-syntax", /--v8-flags/],
    ["--config=/tmp/deno.json", /--config/],
    ["--env-file=/home/me/.env", /--env-file/],
    ["--preload=/tmp/evil.js", /--preload/],
    ["--import-map=/tmp/map.json", /--import-map/],
    ["--unstable-ffi", /--unstable-ffi/],
    ["--allow-scripts", /--allow-scripts/],
    ["--allow-hrtime", /--allow-hrtime/],
    ["--allow-read /etc", /"\/etc"/],
    ["script.ts", /script\.ts/],
    ["-A evil.ts", /evil\.ts/],
    ["--allow-net --cert=/tmp/ca.pem", /--cert/],
    ["-P", /-P/],
    ["-RW", /-RW/],
    ["--allow-read=", /empty value/],
    ["--allow-net=a,,b", /empty value/],
    ["--Allow-read", /--Allow-read/],
    [`"--allow-read=/x`, /unterminated/],
    ["--allow-read=/x\\", /trailing backslash/],
  ];
  for (const [input, pattern] of table) {
    await t.step(JSON.stringify(input), () => {
      assert.throws(() => parsePermissionArgs(input), (error: unknown) => {
        assert.ok(error instanceof PermissionArgsError);
        assert.match(error.message, pattern);
        return true;
      });
    });
  }
});

Deno.test("parsePermissionArgs() summarises what each kind grants", () => {
  const parsed = parsePermissionArgs("--allow-read=/a --allow-read=/b --allow-net --deny-net=x.example");
  assert.deepEqual(parsed.grants.read, ["/a", "/b"]);
  assert.equal(parsed.grants.net, "all");
  assert.equal(parsed.grants.env, "none");
  assert.deepEqual(parsed.denies.net, ["x.example"]);
  assert.equal(describePermissions(parsed), "read: /a, /b; net: all (except x.example)");
  assert.equal(describePermissions(parsePermissionArgs("")), "none");
  assert.equal(parsePermissionArgs("-A").grants.run, "all");
});

Deno.test("splitShellWords() splits like a shell without expanding anything", () => {
  assert.deepEqual(splitShellWords(`a "b c" 'd $HOME' e\\ f "g\\"h" $PATH`), [
    "a",
    "b c",
    "d $HOME",
    "e f",
    'g"h',
    "$PATH",
  ]);
  assert.deepEqual(splitShellWords(`""`), [""]);
});
