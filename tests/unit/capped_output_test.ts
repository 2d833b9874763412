import assert from "node:assert/strict";
import { HeadTailBuffer, readCapped } from "../../src/capped_output.ts";

function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}
const bytes = (text: string) => new TextEncoder().encode(text);
const MARKER =
  /\n\[… output truncated: (\d+) bytes left out here \(limit (\d+) bytes: the first 3\/4 and the last 1\/4 are shown\) …\]\n/;

/** A cut text's head, tail, and the counts its marker states. */
function parts(text: string): { head: string; tail: string; leftOut: number; limit: number } {
  const [head, leftOut, limit, tail, ...rest] = text.split(MARKER);
  assert.equal(rest.length, 0, `one marker in ${JSON.stringify(text)}`);
  assert.ok(head !== undefined && tail !== undefined, `no marker in ${JSON.stringify(text)}`);
  return { head, tail, leftOut: Number(leftOut), limit: Number(limit) };
}

Deno.test("readCapped() keeps everything under the limit", async () => {
  const out = await readCapped(streamOf(bytes("hello "), bytes("world")), 100);
  assert.deepEqual(out, { text: "hello world", truncated: false, totalBytes: 11 });
});

Deno.test("readCapped() keeps a stream of exactly the limit whole", async () => {
  const out = await readCapped(streamOf(bytes("abcdefgh")), 8);
  assert.deepEqual(out, { text: "abcdefgh", truncated: false, totalBytes: 8 });
});

Deno.test("readCapped() keeps the head and the tail and says how much was left out between them", async () => {
  const out = await readCapped(streamOf(bytes("abcdef"), bytes("ghij"), bytes("klmnop")), 8);
  assert.equal(out.truncated, true);
  assert.equal(out.totalBytes, 16);
  assert.deepEqual(parts(out.text), { head: "abcdef", tail: "op", leftOut: 8, limit: 8 });
});

Deno.test("readCapped() shows an error printed after a flood of output", async () => {
  const flood = bytes("x".repeat(1000) + "\n");
  const chunks = [...Array(5000).fill(flood), bytes("Error: the thing that matters\n")];
  const out = await readCapped(streamOf(...chunks), 4096);
  assert.equal(out.truncated, true);
  assert.ok(out.text.endsWith("Error: the thing that matters\n"));
  assert.ok(out.text.startsWith("x".repeat(1000)));
  assert.equal(parts(out.text).leftOut, out.totalBytes - 4096);
});

Deno.test("readCapped() never splits a multi-byte character, at either cut", async (t) => {
  const sample = "é€😀xé€😀x";
  for (let limit = 1; limit < 24; limit++) {
    await t.step(`limit ${limit}`, async () => {
      const encoded = bytes(sample);
      // One byte at a time, so the tail ring wraps at every position.
      const out = await readCapped(streamOf(...Array.from(encoded, (b) => Uint8Array.of(b))), limit);
      assert.ok(!out.text.includes("\uFFFD"), `replacement character in ${JSON.stringify(out.text)}`);
      if (!out.truncated) return assert.equal(out.text, sample);
      const { head, tail, leftOut } = parts(out.text);
      assert.ok(sample.startsWith(head), `head ${JSON.stringify(head)}`);
      assert.ok(sample.endsWith(tail), `tail ${JSON.stringify(tail)}`);
      const kept = bytes(head).byteLength + bytes(tail).byteLength;
      assert.ok(kept <= limit);
      assert.equal(leftOut, encoded.byteLength - kept);
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

Deno.test("readCapped() shows every chunk to a listener, also the bytes it leaves out", async () => {
  const stream = streamOf(bytes("abcdef"), bytes("ghij"), bytes("klmnop"));
  const seen: string[] = [];
  await readCapped(stream, 4, (chunk) => seen.push(new TextDecoder().decode(chunk)));
  assert.equal(seen.join(""), "abcdefghijklmnop");
});

Deno.test("HeadTailBuffer keeps the last bytes when chunks are larger than its tail", () => {
  const buffer = new HeadTailBuffer(8);
  buffer.push(bytes("0123456789"));
  buffer.push(bytes("abcdefghijklmnopqrstuvwxyz"));
  const out = buffer.finish();
  assert.equal(out.totalBytes, 36);
  assert.ok(out.text.startsWith("012345\n"));
  assert.ok(out.text.endsWith("\nyz"));
});
