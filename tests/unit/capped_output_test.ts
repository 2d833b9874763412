import assert from "node:assert/strict";
import { readCapped } from "../../src/capped_output.ts";

function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}
const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("readCapped() keeps everything under the limit", async () => {
  const out = await readCapped(streamOf(bytes("hello "), bytes("world")), 100);
  assert.deepEqual(out, { text: "hello world", truncated: false, totalBytes: 11 });
});

Deno.test("readCapped() cuts at the limit, drains the rest and says how much was dropped", async () => {
  const out = await readCapped(streamOf(bytes("abcdef"), bytes("ghij"), bytes("klmnop")), 8);
  assert.equal(out.truncated, true);
  assert.equal(out.totalBytes, 16);
  assert.match(out.text, /^abcdefgh\n\[… output truncated: 8 more bytes not shown \(limit 8 bytes\)\]$/);
});

Deno.test("readCapped() never splits a multi-byte character", async (t) => {
  for (const limit of [1, 2, 3, 4, 5, 6, 7]) {
    await t.step(`limit ${limit}`, async () => {
      const out = await readCapped(streamOf(bytes("é€😀x")), limit);
      const kept = out.text.split("\n[")[0] as string;
      assert.ok(!kept.includes("\uFFFD"), `replacement character in ${JSON.stringify(kept)}`);
      assert.ok("é€😀x".startsWith(kept));
    });
  }
});

Deno.test("readCapped() drains a stream far larger than the limit", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(97);
  const stream = ReadableStream.from((function* () {
    for (let i = 0; i < 1000; i++) yield chunk;
  })());
  const out = await readCapped(stream, 1024);
  assert.equal(out.totalBytes, 64 * 1024 * 1000);
  assert.equal(out.truncated, true);
});
