/**
 * Code mode end to end: the real bin with CODE_RUNNER_MCP_CONFIG naming the notes fixture (a stdio MCP
 * server with a canary secret in its environment); JavaScript and Python runs call its tools through the
 * server, within their own limits, and the canary never reaches them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, type TestServer } from "../_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIXTURE = new URL("../fixtures/notes_server.ts", import.meta.url).pathname;
const CANARY = `canary-${crypto.randomUUID()}`;

async function withCodeMode(test: (server: TestServer) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "code-runner-mcp-config-" });
  const env: Record<string, string> = { CANARY, NO_COLOR: "1" };
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) env.DENO_DIR = denoDir;
  await Deno.writeTextFile(
    join(dir, "mcp.json"),
    JSON.stringify({
      mcpServers: {
        notes: {
          command: Deno.execPath(),
          args: ["run", "--allow-env", "--config", `${ROOT}deno.json`, FIXTURE],
          env,
          cwd: ROOT,
          tools: ["add", "search", "echo", "fail", "hang", "whoami", "stats"],
        },
      },
    }),
  );
  const server = await startServer({ CODE_RUNNER_MCP_CONFIG: join(dir, "mcp.json") });
  try {
    await test(server);
    assert.ok(!server.stderr().includes(CANARY), "the canary reached the server's log");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("code mode: runs call the operator's MCP tools, and their secrets stay out", async (t) => {
  await withCodeMode(async (server) => {
    const noCanary = (text: string) => assert.ok(!text.includes(CANARY), `the canary reached a run: ${text}`);

    await t.step("both tool descriptions say how to call and list the tools", async () => {
      const { tools } = await server.client.listTools();
      for (const tool of tools) assert.match(tool.description ?? "", /\(notes\).*mcp\.list\(\)/s);
    });

    await t.step(
      "JavaScript: list, a text result, a structured result, many calls, one line printed",
      async () => {
        const { result, text } = await server.js(
          `const [notes] = await mcp.list();\n` +
            `console.log(notes.name, notes.tools.map((t) => t.name).sort().join(","));\n` +
            `for (let i = 0; i < 20; i++) await mcp.servers.notes.add({ title: "t" + i, body: i % 2 ? "odd" : "even" });\n` +
            `const found = await mcp.servers.notes.search({ query: "odd" });\n` +
            `console.log(found.notes.length, (await mcp.servers.notes.echo({ text: "ab", times: 2 })));\n` +
            `const raw = await mcp.call("notes", "fail", {});\nconsole.log(raw.isError, raw.text);`,
        );
        assert.equal(result.status, "ok", text);
        assert.equal(
          result.stdout,
          "notes add,echo,fail,hang,search,stats,whoami\n10 abab\ntrue the notes database is locked\n",
        );
        noCanary(text);
      },
    );

    await t.step(
      "JavaScript: an error result, a tool not allowed and an unknown server throw clearly",
      async () => {
        const { result, text } = await server.js(
          `for (const f of [() => mcp.servers.notes.fail(), () => mcp.servers.notes.crash(), () => mcp.servers.nope.x()]) {\n` +
            `  try { await f(); console.log("no error"); } catch (e) { console.log(e.message); }\n}`,
        );
        assert.equal(result.status, "ok", text);
        const lines = result.stdout.trim().split("\n");
        assert.equal(lines[0], "the notes database is locked");
        assert.match(lines[1] ?? "", /not allowed|allow-list/i);
        assert.match(lines[2] ?? "", /nope/);
      },
    );

    await t.step("Python: the same API, awaited", async () => {
      const { result, text } = await server.py(
        "from code_runner import mcp, McpError\n" +
          "servers = await mcp.list()\n" +
          "found = await mcp.servers.notes.search(query='even')\n" +
          "try:\n    await mcp.servers.notes.fail()\nexcept McpError as e:\n    print('error:', e)\n" +
          "print(servers[0]['name'], len(found['notes']))\n" +
          "(await mcp.call('notes', 'echo', {'text': 'x'}))['text']",
      );
      assert.equal(result.status, "ok", text);
      assert.equal(result.stdout, "error: the notes database is locked\nnotes 10\n");
      assert.equal(result.result, "'x'");
      noCanary(text);
    });

    await t.step("a hanging tool is stopped by the run's time limit, and the next call is fine", async () => {
      const js = await server.js("await mcp.servers.notes.hang()", { timeoutMs: 1500 });
      assert.equal(js.result.status, "timeout", js.text);
      const py = await server.py("from code_runner import mcp\nawait mcp.servers.notes.hang()", {
        timeoutMs: 1500,
      });
      assert.notEqual(py.result.status, "ok", py.text);
      const after = await server.js(`console.log((await mcp.servers.notes.echo({ text: "ok" })))`);
      assert.equal(after.result.stdout, "ok\n", after.text);
    });

    await t.step("cancelling a run cancels its upstream call", async () => {
      const stats = async () =>
        Number(
          (await server.js(`console.log((await mcp.servers.notes.stats()).cancellations)`)).result.stdout,
        );
      const before = await stats();
      const controller = new AbortController();
      const pending = server.js("await mcp.servers.notes.hang()", {
        signal: controller.signal,
        timeoutMs: 60_000,
      });
      setTimeout(() => controller.abort(), 700);
      await assert.rejects(pending);
      let after = before;
      for (let i = 0; i < 50 && after === before; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        after = await stats();
      }
      assert.equal(after, before + 1, "the upstream was told the call was cancelled");
    });

    await t.step("concurrent runs each get their own results", async () => {
      const outputs = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          server.js(
            `let s = ""; for (let j = 0; j < 5; j++) s += await mcp.servers.notes.echo({ text: "${i}" });\nconsole.log(s);`,
          )),
      );
      assert.deepEqual(outputs.map((output) => output.result.stdout), [
        "00000\n",
        "11111\n",
        "22222\n",
        "33333\n",
      ]);
    });

    await t.step("the upstream's environment never reaches a run", async () => {
      const { result, text } = await server.js(
        `const me = await mcp.servers.notes.whoami();\nconsole.log(me.envNames.includes("CANARY"));\n` +
          `console.log(JSON.stringify(Deno.env.toObject()));`,
      );
      // The upstream has it (names only are reported); the run does not.
      assert.equal(result.stdout.split("\n")[0], "true", text);
      noCanary(text);
    });

    await t.step("floods and huge results hit the run's limits with a clear error", async () => {
      const { result, text } = await server.js(
        `let n = 0;\ntry { for (;;) { await mcp.servers.notes.echo({ text: "x" }); n++; } } catch (e) { console.log(n, e.message); }`,
        { timeoutMs: 60_000 },
      );
      assert.equal(result.status, "ok", text);
      assert.match(result.stdout, /^200 .*limit|^200 .*calls/i);
      const big = await server.js(
        `let got = 0;\ntry { for (;;) got += (await mcp.servers.notes.echo({ text: "y", times: 1000000 })).length; } catch (e) { console.log(got > 0, e.message); }`,
        { timeoutMs: 60_000 },
      );
      assert.match(big.result.stdout, /^true .*(bytes|limit)/i, big.text);
    });

    await t.step(
      "a flood on the channel is cut off at the run's budget; the server keeps serving",
      async () => {
        const flood = server.js(
          `const c = await Deno.connect({ transport: "unix", path: Deno.cwd() + "/.mcp.sock" });\n` +
            `c.write(new TextEncoder().encode('{"id":1}\\n'.repeat(16000))).catch(() => {});\n` +
            `let replies = 0;\ntry {\n  for await (const chunk of c.readable) replies += new TextDecoder().decode(chunk).split("\\n").length - 1;\n} catch { /* the server closed the channel */ }\n` +
            `console.log(replies);`,
          { timeoutMs: 60_000 },
        );
        const other = await server.js("console.log(6 * 7)");
        assert.equal(other.result.stdout, "42\n");
        const { result, text } = await flood;
        assert.equal(result.status, "ok", text);
        assert.ok(Number(result.stdout) <= 1001, `${result.stdout} replies: the budget did not hold`);
      },
    );

    await t.step("Python: many calls at once are queued, not refused", async () => {
      const { result, text } = await server.py(
        "import asyncio\nfrom code_runner import mcp\n" +
          "out = await asyncio.gather(*[mcp.servers.notes.echo(text=str(i)) for i in range(20)])\n''.join(out)",
      );
      assert.equal(result.result, `'${Array.from({ length: 20 }, (_, i) => i).join("")}'`, text);
    });

    await t.step("a run cannot reach another run's channel", async () => {
      const { result, text } = await server.js(
        `const dirs = [];\ntry { for (const e of Deno.readDirSync("..")) dirs.push(e.name); } catch (e) { console.log(e.name); }`,
      );
      assert.match(result.stdout, /NotCapable|PermissionDenied/, text);
    });
    await server.assertAlive();
  });
});
