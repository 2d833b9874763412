/**
 * A one-shot child's end marker (see src/subprocess.ts): the server answers when the child says it is done,
 * but never trusts that to mean it is gone, and the marker is found only as the very end of its output.
 */
import assert from "node:assert/strict";
import { Child, ProcessGroups, untilEndMarker } from "../../src/subprocess.ts";
import { isAlive } from "../_helpers.ts";

const MARKER = new TextEncoder().encode(`\0${crypto.randomUUID()}:`);
const markerText = new TextDecoder().decode(MARKER);

Deno.test("a child that announces its end and keeps running is killed before the answer", async () => {
  const groups = new ProcessGroups();
  const dir = await Deno.makeTempDir();
  // The end on both streams, then work that must not outlive the answer.
  await Deno.writeTextFile(`${dir}/end`, `out${markerText}7\n`);
  const script = "cat end; cat end >&2; while true; do date +%s%N >> alive.txt; sleep 0.05; done";
  const child = new Child({
    command: "sh",
    args: ["-c", script],
    env: { PATH: "/usr/bin:/bin" },
    cwd: dir,
    groups,
    endMarker: MARKER,
  });
  try {
    const outcome = await child.finish({
      outputLimitBytes: 1024,
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(outcome.code, 7);
    assert.equal(outcome.stdout.text, "out");
    assert.equal(outcome.aborted, false);
    assert.equal(isAlive(child.pid), false, "the child outlived its answer");
    assert.equal(groups.size, 0);
    // Nothing more is written once the answer is out.
    const written = await Deno.readTextFile(`${dir}/alive.txt`).catch(() => "");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await Deno.readTextFile(`${dir}/alive.txt`).catch(() => ""), written);
  } finally {
    child.kill();
    await child.closed;
    await Deno.remove(dir, { recursive: true });
  }
});

/** What `untilEndMarker` passes on and the code it reports, for `chunks` fed one by one. */
async function through(chunks: Uint8Array[]): Promise<{ bytes: Uint8Array; code: number | null }> {
  let code: number | null = null;
  const stream = ReadableStream.from(chunks).pipeThrough(untilEndMarker(MARKER, (c) => code = c));
  return { bytes: new Uint8Array(await new Response(stream).arrayBuffer()), code };
}

Deno.test("the end marker is found however the output is cut, and only at its very end", async (t) => {
  const encoder = new TextEncoder();
  const end = encoder.encode(`${markerText}42\n`);
  const body = new Uint8Array(5000).map((_, i) => i % 3 === 0 ? 0 : 0x61 + (i % 26));
  const whole = new Uint8Array([...body, ...end]);

  await t.step("split at every point of the marker", async () => {
    for (let cut = body.length - 3; cut <= whole.length; cut++) {
      const { bytes, code } = await through([whole.subarray(0, cut), whole.subarray(cut)]);
      assert.equal(code, 42, `cut at ${cut}`);
      assert.deepEqual(bytes, body, `cut at ${cut}`);
    }
  });

  await t.step("one byte at a time", async () => {
    const { bytes, code } = await through([...whole].map((byte) => new Uint8Array([byte])));
    assert.equal(code, 42);
    assert.deepEqual(bytes, body);
  });

  await t.step("a marker followed by more output is output, not an end", async () => {
    const more = new Uint8Array([...body, ...end, ...encoder.encode("more")]);
    const { bytes, code } = await through([more]);
    assert.equal(code, null);
    assert.deepEqual(bytes, more);
  });

  await t.step("NUL bytes and partial markers pass through unchanged", async () => {
    const partial = MARKER.subarray(0, 10);
    const noisy = new Uint8Array([...new Uint8Array(100_000), ...partial, 0x31, 0x0a, ...partial]);
    const { bytes, code } = await through([noisy.subarray(0, 50_007), noisy.subarray(50_007)]);
    assert.equal(code, null);
    assert.deepEqual(bytes, noisy);
  });
});
