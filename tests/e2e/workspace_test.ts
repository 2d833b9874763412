/**
 * The operator's shared workspace: one host directory seen by both tools, read-only or read-write.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../_helpers.ts";

Deno.test("a read-write workspace is shared by both tools and by later runs", async () => {
  const workspace = await Deno.realPath(await Deno.makeTempDir({ prefix: "code-runner-workspace-" }));
  await Deno.writeTextFile(join(workspace, "input.csv"), "a,b\n1,2\n");
  const server = await startServer({ CODE_RUNNER_WORKSPACE: workspace, CODE_RUNNER_WORKSPACE_MODE: "rw" });
  try {
    const { tools } = await server.client.listTools();
    assert.ok(tools.every((tool) => (tool.description ?? "").includes("workspace")));
    assert.ok(
      tools.every((tool) => tool.annotations?.destructiveHint === true),
      "a writable workspace can be damaged",
    );
    const js = await server.js(
      `const text = Deno.readTextFileSync(${JSON.stringify(join(workspace, "input.csv"))});\n` +
        `Deno.writeTextFileSync(${JSON.stringify(join(workspace, "from-js.txt"))}, text.toUpperCase());`,
    );
    assert.equal(js.result.status, "ok", js.text);
    const py = await server.py(
      "print(open('/workspace/from-js.txt').read(), end='')\nopen('/workspace/from-py.txt', 'w').write('py')",
    );
    assert.equal(py.result.stdout, "A,B\n1,2\n", py.text);
    assert.equal(await Deno.readTextFile(join(workspace, "from-py.txt")), "py");
    // `..` leaves the mount into Python's in-memory file system, never into the host's.
    await server.py("open('/workspace/../escape-probe.txt', 'w').write('x')");
    assert.equal(await Deno.stat(join(workspace, "..", "escape-probe.txt")).catch(() => null), null);
    // Making a link needs unscoped permissions; refused as a Python error, not a broken interpreter.
    await server.py("kept = 'state'");
    const link = await server.py("import os\nos.symlink('/workspace/from-py.txt', '/workspace/link')");
    assert.equal(link.result.status, "error", link.text);
    assert.match(link.result.stderr, /PermissionError|OSError/);
    assert.equal((await server.py("kept")).result.result, "'state'");
  } finally {
    await server.close();
    await Deno.remove(workspace, { recursive: true });
  }
});

Deno.test("a read-only workspace can be read but not written by either tool", async () => {
  const workspace = await Deno.realPath(await Deno.makeTempDir({ prefix: "code-runner-workspace-" }));
  await Deno.writeTextFile(join(workspace, "data.txt"), "shared");
  const server = await startServer({ CODE_RUNNER_WORKSPACE: workspace });
  try {
    const read = await server.py("open('/workspace/data.txt').read()");
    assert.equal(read.result.result, "'shared'", read.text);
    await server.py("kept = 'state'");
    const pyWrite = await server.py("open('/workspace/new.txt', 'w').write('x')");
    assert.equal(pyWrite.isError, true, pyWrite.text);
    // A refused write is an ordinary Python error; the session keeps its state.
    assert.equal(pyWrite.result.status, "error", pyWrite.text);
    assert.match(pyWrite.result.stderr, /PermissionError/);
    assert.equal(pyWrite.result.stateReset, false);
    assert.equal((await server.py("kept")).result.result, "'state'");
    const jsWrite = await server.js(
      `Deno.writeTextFileSync(${JSON.stringify(join(workspace, "new.txt"))}, "x")`,
    );
    assert.equal(jsWrite.isError, true);
    assert.match(jsWrite.result.stderr, /NotCapable|Requires write access/);
    assert.equal(await Deno.stat(join(workspace, "new.txt")).catch(() => null), null);
  } finally {
    await server.close();
    await Deno.remove(workspace, { recursive: true });
  }
});

Deno.test("a link in the workspace never leads a run out of it, in either tool", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "code-runner-links-" }));
  const workspace = join(root, "workspace");
  const outside = join(root, "outside");
  await Deno.mkdir(workspace);
  await Deno.mkdir(outside);
  const secret = `outside-${crypto.randomUUID()}`;
  await Deno.writeTextFile(join(outside, "secret.txt"), secret);
  await Deno.writeTextFile(join(workspace, "inside.txt"), "inside");
  // Left by the operator: a file link and a directory link out, and a link that stays inside.
  await Deno.symlink(join(outside, "secret.txt"), join(workspace, "file-link"));
  await Deno.symlink(outside, join(workspace, "dir-link"));
  await Deno.symlink(join(workspace, "inside.txt"), join(workspace, "inner-link"));
  // A link out one directory down, and a link inside the workspace to that directory.
  await Deno.mkdir(join(workspace, "sub"));
  await Deno.symlink(join(outside, "secret.txt"), join(workspace, "sub", "out"));
  await Deno.symlink(join(workspace, "sub"), join(workspace, "sub-link"));
  const server = await startServer({ CODE_RUNNER_WORKSPACE: workspace, CODE_RUNNER_WORKSPACE_MODE: "rw" });
  try {
    for (const link of ["file-link", "dir-link/secret.txt", "sub/out", "sub-link/out"]) {
      const js = await server.js(
        `console.log(Deno.readTextFileSync(${JSON.stringify(join(workspace, link))}))`,
      );
      assert.equal(js.isError, true, `JavaScript followed ${link}: ${js.text}`);
      assert.ok(!js.text.includes(secret));
      const py = await server.py(`print(open('/workspace/${link}').read())`);
      assert.equal(py.isError, true, `Python followed ${link}: ${py.text}`);
      assert.ok(!py.text.includes(secret));
    }
    // In a writable workspace, renaming the directory that holds a link out does not give it a new name.
    const renamed = await server.js(
      `Deno.renameSync(${JSON.stringify(join(workspace, "sub"))}, ${
        JSON.stringify(join(workspace, "sub2"))
      });\n` +
        `console.log(Deno.readTextFileSync(${JSON.stringify(join(workspace, "sub2", "out"))}));`,
    );
    assert.equal(renamed.isError, true, renamed.text);
    assert.ok(!renamed.text.includes(secret));
    const write = await server.js(
      `Deno.writeTextFileSync(${JSON.stringify(join(workspace, "dir-link", "planted.txt"))}, "x")`,
    );
    assert.equal(write.isError, true, write.text);
    assert.equal(await Deno.stat(join(outside, "planted.txt")).catch(() => null), null);
    // A link that stays inside the workspace works as the file it names.
    const inner = await server.js(
      `console.log(Deno.readTextFileSync(${JSON.stringify(join(workspace, "inner-link"))}))`,
    );
    assert.equal(inner.result.stdout, "inside\n", inner.text);
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
  }
});
