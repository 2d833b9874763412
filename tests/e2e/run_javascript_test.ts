/**
 * run_javascript end to end: the real bin over stdio, an SDK client, one server for the whole file.
 */
import assert from "node:assert/strict";
import { busyJsRunPids, eventually, jsRunPids, processesWith, startServer } from "../_helpers.ts";

Deno.test("run_javascript through a real MCP client", async (t) => {
  const server = await startServer({
    CODE_RUNNER_MEMORY_LIMIT_MB: "256",
    CODE_RUNNER_OUTPUT_LIMIT_BYTES: "4096",
    CODE_RUNNER_TIMEOUT_MS: "10000",
    CODE_RUNNER_MAX_TIMEOUT_MS: "20000",
    CODE_RUNNER_MAX_CONCURRENCY: "2",
  });
  try {
    await t.step(
      "lists the tool with a description of the live configuration and an output schema",
      async () => {
        const { tools } = await server.client.listTools();
        const tool = tools.find((candidate) => candidate.name === "run_javascript");
        assert.ok(tool, "run_javascript is listed");
        assert.match(tool.description ?? "", /Permissions granted by the operator: none/);
        assert.match(tool.description ?? "", /256 MiB/);
        assert.match(tool.description ?? "", /timeout_ms up to 20000/);
        assert.match(tool.description ?? "", /4096 bytes/);
        assert.match(tool.description ?? "", /npm:/);
        assert.equal(tool.inputSchema.required?.includes("code"), true);
        assert.ok(tool.outputSchema?.properties?.status, "outputSchema describes status");
        assert.equal(tool.annotations?.openWorldHint, false);
      },
    );

    await t.step("runs TypeScript with top-level await and keeps stdout and stderr apart", async () => {
      const { result, text, isError } = await server.js(
        `const n: number = await Promise.resolve(41);\nconsole.log(n + 1);\nconsole.error("to stderr");`,
      );
      assert.equal(isError, false);
      assert.equal(result.status, "ok");
      assert.equal(result.exitCode, 0);
      assert.equal(result.stdout, "42\n");
      assert.equal(result.stderr, "to stderr\n");
      assert.equal(result.timedOut, false);
      assert.equal(result.truncated, false);
      assert.ok(result.durationMs >= 0);
      assert.match(text, /status: ok/);
      assert.match(text, /--- stdout ---\n42/);
    });

    await t.step("reports an uncaught error with the user's line, as an error", async () => {
      const { result, isError } = await server.js(`console.log("before");\nthrow new Error("boom");`);
      assert.equal(isError, true);
      assert.equal(result.status, "error");
      assert.equal(result.exitCode, 1);
      assert.equal(result.stdout, "before\n");
      assert.match(result.stderr, /Error: boom/);
      assert.match(result.stderr, /main\.ts:2/);
      assert.doesNotMatch(result.stderr, /code-runner-mcp-/, "private paths are hidden");
    });

    await t.step("reports a syntax error clearly", async () => {
      const { result, isError } = await server.js("const = 1;");
      assert.equal(isError, true);
      assert.equal(result.status, "error");
      assert.match(result.message ?? "", /syntax/i);
      assert.notEqual(result.stderr, "");
    });

    await t.step("reports an unhandled rejection from a callback", async () => {
      const { result, isError } = await server.js(
        `setTimeout(() => Promise.reject(new Error("late failure")), 10);`,
      );
      assert.equal(isError, true);
      assert.match(result.stderr, /late failure/);
    });

    await t.step("passes a chosen exit code through", async () => {
      const { result, isError } = await server.js(`console.log("x"); Deno.exit(3);`);
      assert.equal(isError, true);
      assert.equal(result.exitCode, 3);
      assert.equal(result.stdout, "x\n");
    });

    await t.step(
      "the answer, given before the process is torn down, keeps the true exit code and output",
      async () => {
        const cases: Array<[code: string, exitCode: number, stdout: string, stderr: string]> = [
          [`Deno.exitCode = 4; console.log("set");`, 4, "set\n", ""],
          [`setTimeout(() => { console.log("later"); Deno.exitCode = 5; }, 30);`, 5, "later\n", ""],
          // The launcher's unload listener comes first and exits with the code as it is then, as the process does.
          [`addEventListener("unload", () => { Deno.exitCode = 6; }); console.log("u");`, 0, "u\n", ""],
          [`queueMicrotask(() => Deno.exit(7)); console.error("e");`, 7, "", "e\n"],
          // NUL bytes, a newline-less end, and text shaped like an end marker are the code's output, not an end.
          [`await Deno.stdout.write(new Uint8Array([0, 0x61, 0x3a, 0x30, 0x0a, 0]));`, 0, "\0a:0\n\0", ""],
          [
            `Deno.stdout.writeSync(new TextEncoder().encode("\\0" + crypto.randomUUID() + ":0\\nmore"));`,
            0,
            "",
            "",
          ],
          // The code closes its own streams: the server waits for the process instead.
          [`Deno.stdout.close(); Deno.exitCode = 2;`, 2, "", ""],
        ];
        for (const [code, exitCode, stdout, stderr] of cases) {
          const { result } = await server.js(code);
          assert.equal(result.exitCode, exitCode, code);
          if (code.includes("randomUUID")) assert.match(result.stdout, /^\0[0-9a-f-]{36}:0\nmore$/, code);
          else assert.equal(result.stdout, stdout, code);
          assert.equal(result.stderr, stderr, code);
        }
      },
    );

    await t.step("calls back to back and in bursts all get their own answer", async () => {
      for (let i = 0; i < 6; i++) {
        const { result } = await server.js(`console.log(${i})`);
        assert.equal(result.stdout, `${i}\n`);
      }
      const burst = await Promise.all(
        Array.from({ length: 8 }, (_, i) => server.js(`console.log(${i}); Deno.exitCode = ${i % 3};`)),
      );
      burst.forEach(({ result }, i) => {
        assert.equal(result.stdout, `${i}\n`);
        assert.equal(result.exitCode, i % 3);
      });
    });

    await t.step("node: built-ins and npm: packages import", async () => {
      const { result } = await server.js(
        `import { createHash } from "node:crypto";\nimport isNumber from "npm:is-number@7.0.0";\n` +
          `console.log(createHash("sha256").update("a").digest("hex").slice(0, 8), isNumber(5));`,
        { timeoutMs: 20000 },
      );
      assert.equal(result.stdout, "ca978112 true\n", result.stderr);
      const again = await server.js(
        `const m = await import("npm:is-number@7.0.0"); console.log(m.default("x"));`,
      );
      assert.equal(again.result.stdout, "false\n", again.result.stderr);
    });

    await t.step("the working directory is fresh, private to the run, and writable", async () => {
      const first = await server.js(
        `Deno.writeTextFileSync("note.txt", "hello"); console.log(Deno.readTextFileSync("note.txt"), [...Deno.readDirSync(".")].length);`,
      );
      assert.equal(first.result.stdout, "hello 3\n", first.result.stderr);
      const second = await server.js(
        `console.log([...Deno.readDirSync(".")].map((e) => e.name).sort().join(","));`,
      );
      assert.equal(second.result.stdout, "main.ts,output\n", "the next run starts with an empty directory");
    });

    await t.step("files written to ./output come back as images and resources", async () => {
      const png =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
      const response = await server.client.callTool({
        name: "run_javascript",
        arguments: {
          code:
            `Deno.writeFileSync("output/dot.png", Uint8Array.from(atob("${png}"), (c) => c.charCodeAt(0)));\n` +
            `Deno.writeTextFileSync("output/data.csv", "a,b\\n1,2\\n");\n` +
            `Deno.writeFileSync("output/huge.bin", new Uint8Array(6 * 1024 * 1024));`,
        },
      });
      const content = response.content as Array<Record<string, unknown>>;
      const image = content.find((item) => item.type === "image");
      assert.deepEqual(image, { type: "image", data: png, mimeType: "image/png" });
      const resource = content.find((item) => item.type === "resource") as {
        resource: { text: string; mimeType: string };
      };
      assert.deepEqual([resource.resource.mimeType, resource.resource.text], ["text/csv", "a,b\n1,2\n"]);
      const structured = response.structuredContent as {
        attachments: Array<{ name: string }>;
        keptOutputs: Array<{ of: string; uri: string; bytes: number }>;
      };
      assert.deepEqual(structured.attachments.map((a) => a.name), ["data.csv", "dot.png"]);
      // Too large to return inline: kept as a resource the result links to.
      const kept = structured.keptOutputs.find((output) => output.of === "huge.bin");
      assert.equal(kept?.bytes, 6 * 1024 * 1024);
      assert.ok(content.some((item) => item.type === "resource_link" && item.uri === kept?.uri));
    });

    await t.step("a busy loop times out, is killed, and the next call works", async () => {
      const { result, isError, text } = await server.js("while (true) {}", { timeoutMs: 500 });
      assert.equal(isError, true);
      assert.equal(result.status, "timeout");
      assert.equal(result.timedOut, true);
      assert.equal(result.exitCode, null);
      assert.match(text, /Timed out after 500 ms/);
      await server.assertAlive();
    });

    await t.step("a memory bomb of JS objects is stopped", async () => {
      const { result, isError } = await server.js(
        "const a = []; while (true) a.push({ x: Math.random(), y: new Array(100).fill(1) });",
      );
      assert.equal(isError, true);
      assert.equal(result.memoryExceeded, true, JSON.stringify(result).slice(0, 500));
      assert.equal(result.status, "crashed");
      await server.assertAlive();
    });

    await t.step("a memory bomb of ArrayBuffers, outside the JS heap, is stopped", async () => {
      const { result, isError } = await server.js(
        "const keep = []; while (true) keep.push(new Uint8Array(16 * 1024 * 1024).fill(7));",
      );
      assert.equal(isError, true);
      assert.equal(result.memoryExceeded, true, JSON.stringify(result).slice(0, 500));
      await server.assertAlive();
    });

    await t.step("a flood of output is cut at the limit with a visible marker", async () => {
      const { result } = await server.js(
        `const line = "y".repeat(99) + "\\n"; for (let i = 0; i < 100000; i++) console.log(line);` +
          `console.error("e".repeat(10000));`,
      );
      assert.equal(result.status, "ok");
      assert.equal(result.truncated, true);
      assert.ok(result.stdout.length < 4096 + 200, `stdout was ${result.stdout.length} chars`);
      assert.match(result.stdout, /output truncated: \d+ bytes left out here/);
      assert.match(result.stderr, /output truncated/);
      await server.assertAlive();
    });

    await t.step("bad arguments get a clear error and the server keeps going", async (t) => {
      const cases: Array<[string, Record<string, unknown>, RegExp]> = [
        ["missing code", {}, /code/],
        ["code of the wrong type", { code: 42 }, /code/],
        ["empty code", { code: "" }, /empty/],
        ["code over the size cap", { code: "x".repeat(1024 * 1024 + 1) }, /larger than/],
        ["timeout above the operator's maximum", { code: "1", timeout_ms: 20001 }, /timeout_ms/],
        ["negative timeout", { code: "1", timeout_ms: -5 }, /timeout_ms/],
      ];
      for (const [name, args, pattern] of cases) {
        await t.step(name, async () => {
          const response = await server.client.callTool({ name: "run_javascript", arguments: args })
            .catch((error: Error) => ({ isError: true, content: [{ type: "text", text: error.message }] }));
          const r = response as { isError?: boolean; content: Array<{ text?: string }> };
          assert.equal(r.isError, true);
          assert.match(r.content.map((item) => item.text).join("\n"), pattern);
        });
      }
      await server.assertAlive();
    });

    await t.step("runs queue at the concurrency cap and all finish", async () => {
      const code = `const start = Date.now(); await new Promise((r) => setTimeout(r, 400)); ` +
        `console.log(JSON.stringify([start, Date.now()]));`;
      const results = await Promise.all([1, 2, 3, 4].map(() => server.js(code)));
      const spans = results.map(({ result }) => JSON.parse(result.stdout) as [number, number]);
      for (const [start] of spans) {
        const running = spans.filter(([s, e]) => s <= start && start < e).length;
        assert.ok(running <= 2, `at most 2 runs at once, saw ${running}`);
      }
    });

    await t.step("a long run reports progress when the client asks for it", async () => {
      const messages: string[] = [];
      const { result } = await server.js(
        "await new Promise((r) => setTimeout(r, 6000)); console.log('done')",
        {
          onprogress: (progress) => messages.push(progress.message ?? ""),
        },
      );
      assert.equal(result.stdout, "done\n");
      assert.ok(messages.some((m) => /still running/.test(m)), `progress: ${messages.join(" | ")}`);
    });

    await t.step("a cancelled call kills its run", async () => {
      const controller = new AbortController();
      const call = server.js("while (true) {}", { signal: controller.signal });
      assert.ok(await eventually(() => busyJsRunPids(server.pid).length === 1), "the run started");
      const [busy] = busyJsRunPids(server.pid);
      controller.abort();
      await assert.rejects(call);
      assert.ok(
        await eventually(() => !jsRunPids(server.pid).includes(busy as number)),
        "the run's process is gone",
      );
      await server.assertAlive();
    });
  } finally {
    await server.close();
  }
});

Deno.test("subprocesses of a run die with it on timeout", async () => {
  const marker = `${Math.floor(Math.random() * 1e6)}.4242`;
  const server = await startServer({ DENO_PERMISSION_ARGS: "--allow-run=sleep" });
  try {
    const { result } = await server.js(
      `new Deno.Command("sleep", { args: ["${marker}"] }).spawn(); while (true) {}`,
      { timeoutMs: 1500 },
    );
    assert.equal(result.status, "timeout");
    assert.ok(await eventually(() => processesWith(marker).length === 0), "the grandchild was killed");
  } finally {
    await server.close();
  }
});
