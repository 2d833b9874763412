/**
 * Output that is never lost, end to end: a cut stream keeps its head and tail inline and its whole self as a
 * resource the result links to; ranges read back exact bytes; files too large to return are kept the same
 * way; only the producing session can read them; they expire; the disk budget holds.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import assert from "node:assert/strict";
import { startServer, type ToolOutput, toolOutput } from "../_helpers.ts";
import { connect, eventuallyAsync, startHttp, TOKEN } from "../_http.ts";

/** `count` numbered lines of 101 bytes each, as a run prints them. */
function numberedLines(count: number): string {
  let text = "";
  for (let i = 0; i < count; i++) text += `line ${String(i).padStart(6, "0")} ${"x".repeat(88)}\n`;
  return text;
}

/** JavaScript printing `count` numbered lines (5 MB for 50 000), then its last words, then failing. */
function floodThenFail(count: number): string {
  return `let text = ""; for (let i = 0; i < ${count}; i++) ` +
    'text += `line ${String(i).padStart(6, "0")} ${"x".repeat(88)}\\n`;\n' +
    "Deno.stdout.writeSync(new TextEncoder().encode(text));\n" +
    'console.log("FINAL ANSWER 42");\nthrow new Error("boom at the end");';
}

async function js(client: Client, code: string): Promise<ToolOutput & { raw: unknown }> {
  const raw = await client.callTool({ name: "run_javascript", arguments: { code } }, undefined, {
    timeout: 120_000,
  });
  return { ...toolOutput(raw), raw };
}

/** Reads a kept output (or a range of it) as bytes. */
async function readBytes(client: Client, uri: string): Promise<Uint8Array> {
  const { contents } = await client.readResource({ uri });
  const item = contents[0] as { text?: string; blob?: string };
  if (item.text !== undefined) return new TextEncoder().encode(item.text);
  return Uint8Array.from(atob(item.blob ?? ""), (c) => c.charCodeAt(0));
}

Deno.test("kept output over stdio: head and tail inline, the rest by link and by range", async (t) => {
  const server = await startServer({
    CODE_RUNNER_OUTPUT_LIMIT_BYTES: "4096",
    CODE_RUNNER_OUTPUT_KEEP_MB: "16",
  });
  const { client } = server;
  try {
    const expected = new TextEncoder().encode(numberedLines(50_000) + "FINAL ANSWER 42\n");
    let uri = "";

    await t.step(
      "a run printing 5 MB then failing shows the failure in the tail and links the full output",
      async () => {
        const { result, text, isError, raw } = await js(client, floodThenFail(50_000));
        assert.equal(isError, true);
        assert.equal(result.status, "error");
        assert.equal(result.truncated, true);
        assert.ok(result.stdout.startsWith("line 000000 "));
        assert.ok(result.stdout.endsWith("FINAL ANSWER 42\n"), result.stdout.slice(-200));
        assert.match(result.stdout, /\[… output truncated: \d+ bytes left out here/);
        assert.match(result.stderr, /boom at the end/);
        const [link, ...others] = result.keptOutputs ?? [];
        assert.equal(others.length, 0);
        assert.ok(link);
        assert.equal(link.of, "stdout");
        assert.equal(link.bytes, expected.byteLength);
        assert.equal(link.totalBytes, expected.byteLength);
        uri = link.uri;
        assert.match(text, new RegExp(`The full stdout is kept as ${uri.replace(/[.?]/g, "\\$&")}`));
        assert.match(text, /resources\/read/);
        const items =
          (raw as { content: Array<{ type: string; uri?: string; size?: number; icons?: unknown[] }> })
            .content;
        const resourceLink = items.find((item) => item.type === "resource_link");
        assert.equal(resourceLink?.uri, uri);
        assert.equal(resourceLink?.size, expected.byteLength);
        assert.ok(resourceLink?.icons?.length, "the link carries the server's icon");
      },
    );

    await t.step("reading it back, whole or by range, gives the exact bytes", async () => {
      assert.deepEqual(await readBytes(client, uri), expected);
      const ranges: Array<[number, number]> = [[0, 100], [2_500_000, 4096], [expected.byteLength - 16, 16], [
        7,
        1,
      ]];
      for (const [offset, length] of ranges) {
        const part = await readBytes(client, `${uri}?offset=${offset}&length=${length}`);
        assert.deepEqual(part, expected.subarray(offset, offset + length), `range ${offset}+${length}`);
      }
      const { contents } = await client.readResource({ uri: `${uri}?offset=${expected.byteLength - 16}` });
      assert.equal((contents[0] as { text?: string }).text, "\nFINAL ANSWER 42\n".slice(-16));
      await assert.rejects(
        client.readResource({ uri: `${uri}?offset=${expected.byteLength + 1}` }),
        /past the end/,
      );
    });

    await t.step("resources/list shows the session's kept outputs with size and age", async () => {
      const { resources } = await client.listResources();
      const listed = resources.find((resource) => resource.uri === uri);
      assert.ok(listed, JSON.stringify(resources));
      assert.equal(listed.size, expected.byteLength);
      assert.match(
        listed.description ?? "",
        new RegExp(`stdout of a run_javascript call: ${expected.byteLength} bytes, kept \\d+ min ago`),
      );
      const { resourceTemplates } = await client.listResourceTemplates();
      assert.ok(
        resourceTemplates.some((template) => template.uriTemplate.startsWith("code-runner://outputs/")),
      );
    });

    await t.step("a small output is not kept and links nothing", async () => {
      const { result, raw } = await js(client, "console.log('small')");
      assert.equal(result.keptOutputs, undefined);
      assert.ok(
        !(raw as { content: Array<{ type: string }> }).content.some((i) => i.type === "resource_link"),
      );
    });

    await t.step(
      "Python: 5 MB then an exception keeps the traceback and the last lines, and links the rest",
      async () => {
        const output = toolOutput(
          await client.callTool(
            {
              name: "run_python",
              arguments: {
                code: "for i in range(50000):\n    print(f'line {i:06d} ' + 'x' * 88)\n" +
                  "print('FINAL ANSWER 42')\nraise ValueError('boom at the end')",
              },
            },
            undefined,
            { timeout: 180_000 },
          ),
        );
        assert.equal(output.result.status, "error");
        assert.ok(output.result.stdout.endsWith("FINAL ANSWER 42\n"));
        assert.match(output.result.stderr, /ValueError: boom at the end/);
        const link = output.result.keptOutputs?.[0];
        assert.ok(link);
        assert.equal(link.bytes, expected.byteLength);
        assert.deepEqual(
          await readBytes(client, `${link.uri}?offset=1234567&length=5000`),
          expected.subarray(1234567, 1239567),
        );
      },
    );

    await t.step("a ./output/ file too large to return is kept and linked instead of dropped", async () => {
      const { result, raw } = await js(
        client,
        "const big = new Uint8Array(6 * 1024 * 1024); for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;\n" +
          'Deno.writeFileSync("output/big.bin", big); Deno.writeTextFileSync("output/small.txt", "inline");',
      );
      assert.equal(result.status, "ok");
      assert.deepEqual(result.attachments?.map((a) => a.name), ["small.txt"]);
      const link = result.keptOutputs?.find((kept) => kept.of === "big.bin");
      assert.ok(link, JSON.stringify(result.keptOutputs));
      assert.equal(link.bytes, 6 * 1024 * 1024);
      const items = (raw as { content: Array<{ type: string; uri?: string }> }).content;
      assert.ok(items.some((item) => item.type === "resource_link" && item.uri === link.uri));
      const part = await readBytes(client, `${link.uri}?offset=1000000&length=1000`);
      assert.deepEqual(part, Uint8Array.from({ length: 1000 }, (_, i) => ((1000000 + i) * 7) % 251));
    });
  } finally {
    await server.close();
  }
});

Deno.test("kept output expires", async () => {
  const server = await startServer({
    CODE_RUNNER_OUTPUT_LIMIT_BYTES: "1024",
    CODE_RUNNER_OUTPUT_KEEP_MS: "3000",
  });
  try {
    const { result } = await js(server.client, "console.log('z'.repeat(5000))");
    const uri = result.keptOutputs?.[0]?.uri;
    assert.ok(uri);
    assert.equal((await readBytes(server.client, uri)).byteLength, 5001);
    assert.ok(
      await eventuallyAsync(() => server.client.readResource({ uri }).then(() => false, () => true), 10_000),
      "the output outlived its keep time",
    );
    await assert.rejects(server.client.readResource({ uri }), /No kept output/);
    assert.equal((await server.client.listResources()).resources.length, 0);
  } finally {
    await server.close();
  }
});

Deno.test("kept output over HTTP: only its session reads it, and the disk budget holds", async (t) => {
  const server = await startHttp({
    CODE_RUNNER_HTTP_TOKEN: TOKEN,
    CODE_RUNNER_OUTPUT_LIMIT_BYTES: "4096",
    CODE_RUNNER_OUTPUT_KEEP_TOTAL_MB: "1",
  });
  assert.ok(server.url, `no URL in: ${server.text}`);
  const clients: Client[] = [];
  try {
    const [a, b] = await Promise.all([connect(server.url as string), connect(server.url as string)]);
    clients.push(a, b);
    const total = async (client: Client) =>
      (await client.listResources()).resources.reduce((sum, resource) => sum + (resource.size ?? 0), 0);

    await t.step("another session is refused", async () => {
      const { result } = await js(a, "console.log('a'.repeat(300_000))");
      const uri = result.keptOutputs?.[0]?.uri;
      assert.ok(uri);
      assert.equal((await readBytes(a, uri)).byteLength, 300_001);
      await assert.rejects(b.readResource({ uri }), /No kept output .* in this session/);
      await assert.rejects(b.readResource({ uri: `${uri}?offset=0&length=10` }), /No kept output/);
      assert.equal((await b.listResources()).resources.length, 0);
      assert.equal((await a.listResources()).resources.length, 1);
    });

    await t.step("the disk budget holds: the oldest outputs go first, a run keeps what fits", async () => {
      for (let i = 0; i < 3; i++) {
        const { result } = await js(i % 2 ? b : a, `console.log("${i}".repeat(400_000))`);
        assert.ok(result.keptOutputs?.[0], `run ${i} kept nothing`);
        assert.ok((await total(a)) + (await total(b)) <= 1024 * 1024, `over budget after run ${i}`);
      }
      // The first output (session a, 300 KB) made room for later ones.
      assert.ok(!(await a.listResources()).resources.some((r) => r.size === 300_001));
      const { result } = await js(a, "console.log('w'.repeat(1_500_000))");
      const link = result.keptOutputs?.[0];
      assert.ok(link);
      assert.equal(link.bytes, 1024 * 1024);
      assert.equal(link.totalBytes, 1_500_001);
      assert.ok((await total(a)) + (await total(b)) <= 1024 * 1024);
      const tail = await readBytes(a, `${link.uri}?offset=${1024 * 1024 - 3}&length=3`);
      assert.equal(new TextDecoder().decode(tail), "www");
    });
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await server.stop();
  }
});
