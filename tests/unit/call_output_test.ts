import assert from "node:assert/strict";
import { CallOutput } from "../../src/call_output.ts";
import { KeptOutputs } from "../../src/outputs.ts";
import { emptyResult, type RunResult, toToolResult } from "../../src/result.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

async function withOutputs(
  perRunBytes: number,
  body: (outputs: ReturnType<KeptOutputs["session"]>) => Promise<void> | void,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "call-output-test-" });
  const store = await KeptOutputs.create(`${dir}/outputs`, {
    perRunBytes,
    totalBytes: 1 << 24,
    keepMs: 60_000,
  });
  try {
    await body(store.session());
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function okResult(fields: Partial<RunResult> = {}): RunResult {
  return { ...emptyResult("ok", ""), message: undefined, exitCode: 0, ...fields } as RunResult;
}

Deno.test("CallOutput keeps nothing when the streams fit the limit", async () => {
  await withOutputs(1 << 20, (outputs) => {
    const output = new CallOutput(outputs, { tool: "run_javascript", limitBytes: 10 });
    output.write("stdout", bytes("0123456789"));
    const result = output.keep(okResult());
    assert.equal(result.keptOutputs, undefined);
    assert.deepEqual(outputs.list(), []);
  });
});

Deno.test("CallOutput keeps a cut stream whole, from its first byte, and links it", async () => {
  await withOutputs(1 << 20, async (outputs) => {
    let changed = 0;
    outputs.onChange = () => changed++;
    const output = new CallOutput(outputs, { tool: "run_python", limitBytes: 10 });
    const written = Array.from({ length: 50 }, (_, i) => `line ${i}\n`);
    for (const line of written) output.write("stdout", bytes(line));
    output.write("stderr", bytes("error\n"));
    const result = output.keep(okResult({ truncated: true }));
    const [link, ...rest] = result.keptOutputs ?? [];
    assert.equal(rest.length, 0, "stderr fit and is not kept");
    assert.ok(link);
    assert.equal(link.of, "stdout");
    const whole = written.join("");
    assert.equal(link.bytes, bytes(whole).byteLength);
    const read = await outputs.read(link.uri);
    assert.equal(new TextDecoder().decode(read.bytes), whole);
    assert.equal(changed, 1);

    const tool = toToolResult(result);
    const item = tool.content.find((c) => c.type === "resource_link");
    assert.ok(item && item.type === "resource_link");
    assert.equal(item.uri, link.uri);
    assert.equal(item.size, link.bytes);
    assert.ok(item.icons.length);
    const text = (tool.content[0] as { text: string }).text;
    assert.match(
      text,
      /The full stdout is kept as code-runner:\/\/outputs\/.*resources\/read.*\?offset=N&length=N/,
    );
    assert.deepEqual((tool.structuredContent.keptOutputs as unknown[]).length, 1);
  });
});

Deno.test("CallOutput keeps at most the per-run budget, and says it is a part", async () => {
  await withOutputs(100, (outputs) => {
    const output = new CallOutput(outputs, { tool: "run_javascript", limitBytes: 10 });
    output.write("stdout", bytes("x".repeat(80)));
    output.write("stderr", bytes("y".repeat(80)));
    const result = output.keep(okResult());
    const total = (result.keptOutputs ?? []).reduce((sum, link) => sum + link.bytes, 0);
    assert.equal(total, 100);
    const stderr = result.keptOutputs?.find((link) => link.of === "stderr");
    assert.deepEqual([stderr?.bytes, stderr?.totalBytes], [20, 80]);
    const text = (toToolResult(result).content[0] as { text: string }).text;
    assert.match(text, /The full stderr \(its first 20 of 80 bytes\) is kept/);
  });
});

Deno.test("CallOutput shares the per-run budget between streams that interleave", () =>
  withOutputs(100, (outputs) => {
    const output = new CallOutput(outputs, { tool: "run_javascript", limitBytes: 10 });
    for (let i = 0; i < 20; i++) output.write(i % 2 ? "stderr" : "stdout", bytes("z".repeat(10)));
    const links = output.keep(okResult()).keptOutputs ?? [];
    assert.equal(links.reduce((sum, link) => sum + link.bytes, 0), 100);
    assert.deepEqual(links.map((link) => link.totalBytes), [100, 100]);
  }));

Deno.test("CallOutput shows the latest lines of both streams", () => {
  const output = new CallOutput(null, { tool: "run_javascript", limitBytes: 10 });
  for (let i = 0; i < 30; i++) output.write(i % 2 ? "stderr" : "stdout", bytes(`tick ${i}\n`));
  assert.equal(output.latestLines(3), "tick 27\ntick 28\ntick 29");
  assert.equal(output.keep(okResult()).keptOutputs, undefined, "without a store nothing is kept");
});

Deno.test("CallOutput keeps attachments over the inline limits instead of dropping them", async () => {
  await withOutputs(16 << 20, async (outputs) => {
    const output = new CallOutput(outputs, { tool: "run_javascript", limitBytes: 10 });
    const big = new Uint8Array(6 * 1024 * 1024).map((_, i) => i % 251);
    let binary = "";
    for (const b of big) binary += String.fromCharCode(b);
    const result = output.keep(okResult({
      attachments: [
        { name: "small.txt", mimeType: "text/plain", text: "hello" },
        { name: "big.bin", mimeType: "application/octet-stream", data: btoa(binary) },
      ],
    }));
    assert.deepEqual(result.attachments?.map((a) => a.name), ["small.txt"]);
    const link = result.keptOutputs?.[0];
    assert.equal(link?.of, "big.bin");
    const part = await outputs.read(`${link?.uri}?offset=1000&length=10`);
    assert.deepEqual(part.bytes, big.subarray(1000, 1010));
    assert.equal(result.message, undefined);
  });
  await withOutputs(1024, (outputs) => {
    const output = new CallOutput(outputs, { tool: "run_javascript", limitBytes: 10 });
    const result = output.keep(okResult({
      attachments: [{ name: "huge.txt", mimeType: "text/plain", text: "z".repeat(6 * 1024 * 1024) }],
    }));
    assert.equal(result.attachments, undefined);
    assert.equal(result.keptOutputs, undefined);
    assert.match(result.message ?? "", /Not returned .* and not kept .*huge\.txt \(6291456 bytes\)/);
  });
});

Deno.test("CallOutput.discard() leaves nothing behind", async () => {
  await withOutputs(1 << 20, (outputs) => {
    const output = new CallOutput(outputs, { tool: "run_javascript", limitBytes: 10 });
    output.write("stdout", bytes("x".repeat(100)));
    output.discard();
    assert.equal(output.keep(okResult()).keptOutputs, undefined);
    assert.deepEqual(outputs.list(), []);
  });
});
