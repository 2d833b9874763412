import assert from "node:assert/strict";
import { KeptOutputs, OutputNotFound, parseOutputUri, type SessionOutputs } from "../../src/outputs.ts";

/** Polls `check` until it holds, for up to 5 s. */
async function eventually(check: () => boolean): Promise<boolean> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

async function withStore(
  limits: { perRunBytes?: number; totalBytes?: number; keepMs?: number },
  body: (store: KeptOutputs, dir: string) => Promise<void> | void,
): Promise<void> {
  const dir = `${await Deno.makeTempDir({ prefix: "outputs-test-" })}/outputs`;
  const store = await KeptOutputs.create(dir, {
    perRunBytes: limits.perRunBytes ?? 1 << 20,
    totalBytes: limits.totalBytes ?? 1 << 20,
    keepMs: limits.keepMs ?? 60_000,
  });
  try {
    await body(store, dir);
  } finally {
    await store.close();
    await Deno.remove(dir.replace(/\/outputs$/, ""), { recursive: true }).catch(() => {});
  }
}

function keep(session: SessionOutputs, content: string, maxBytes = 1 << 20) {
  const writer = session.writer({
    name: "stdout.txt",
    mimeType: "text/plain",
    description: "stdout",
    maxBytes,
  });
  for (const part of content.match(/.{1,7}/gs) ?? []) writer.write(bytes(part));
  return writer.commit(bytes(content).byteLength);
}

Deno.test("KeptOutputs keeps an output and reads it back whole or by byte range", async () => {
  await withStore({}, async (store) => {
    const session = store.session();
    const kept = keep(session, "0123456789abcdefghij");
    assert.ok(kept);
    assert.match(kept.uri, /^code-runner:\/\/outputs\/[0-9a-f]{32}\/stdout\.txt$/);
    assert.equal(kept.bytes, 20);
    assert.equal(text((await session.read(kept.uri)).bytes), "0123456789abcdefghij");
    assert.equal(text((await session.read(`${kept.uri}?offset=5&length=4`)).bytes), "5678");
    assert.equal(text((await session.read(`${kept.uri}?offset=15`)).bytes), "fghij");
    assert.equal(text((await session.read(`${kept.uri}?length=3`)).bytes), "012");
    assert.equal(text((await session.read(`${kept.uri}?offset=18&length=100`)).bytes), "ij");
    assert.equal((await session.read(`${kept.uri}?offset=20`)).bytes.byteLength, 0);
    await assert.rejects(session.read(`${kept.uri}?offset=21`), RangeError);
    await assert.rejects(session.read(`${kept.uri}?offset=-1`), RangeError);
    await assert.rejects(session.read(`${kept.uri}?length=abc`), RangeError);
    await assert.rejects(session.read(kept.uri, 10), /read it in parts/);
    assert.deepEqual(session.list().map((output) => output.id), [kept.id]);
  });
});

Deno.test("KeptOutputs shows an output to the session that kept it, and to no other", async () => {
  await withStore({}, async (store) => {
    const mine = store.session();
    const theirs = store.session();
    const kept = keep(mine, "secret output");
    assert.ok(kept);
    await assert.rejects(theirs.read(kept.uri), OutputNotFound);
    await assert.rejects(theirs.read(`${kept.uri}?offset=0&length=1`), OutputNotFound);
    assert.deepEqual(theirs.list(), []);
    await assert.rejects(mine.read("code-runner://outputs/0000/stdout.txt"), OutputNotFound);
    await assert.rejects(mine.read("file:///etc/passwd"), OutputNotFound);
  });
});

Deno.test("KeptOutputs removes an output when its time is up, and a session's outputs when it ends", async () => {
  await withStore({ keepMs: 50 }, async (store, dir) => {
    const session = store.session();
    const kept = keep(session, "short-lived");
    assert.ok(kept);
    assert.equal(kept.expiresAt - kept.createdAt, 50);
    assert.ok(await eventually(() => session.list().length === 0), "not removed in time");
    await assert.rejects(session.read(kept.uri), OutputNotFound);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    assert.equal(store.usedBytes, 0);
  });
  await withStore({}, (store, dir) => {
    const session = store.session();
    keep(session, "a");
    keep(session, "b");
    session.close();
    assert.deepEqual(session.list(), []);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("KeptOutputs stays within its disk budget: the oldest go first, a writer keeps what fits", async () => {
  await withStore({ totalBytes: 100 }, (store, dir) => {
    const a = store.session();
    const b = store.session();
    const first = keep(a, "1".repeat(40));
    const second = keep(b, "2".repeat(40));
    assert.ok(first && second);
    const third = keep(a, "3".repeat(40));
    assert.ok(third);
    assert.deepEqual(a.list().map((o) => o.id), [third.id], "the oldest made room");
    assert.deepEqual(b.list().map((o) => o.id), [second.id]);
    const big = keep(b, "4".repeat(150));
    assert.ok(big);
    assert.equal(big.bytes, 100);
    assert.equal(big.totalBytes, 150);
    assert.ok(store.usedBytes <= 100);
    const onDisk = [...Deno.readDirSync(dir)].reduce(
      (sum, e) => sum + Deno.statSync(`${dir}/${e.name}`).size,
      0,
    );
    assert.ok(onDisk <= 100, `${onDisk} bytes on disk`);
  });
});

Deno.test("an OutputWriter keeps at most its share, and an aborted or empty one leaves nothing", async () => {
  await withStore({}, async (store, dir) => {
    const session = store.session();
    const capped = keep(session, "abcdefghij", 4);
    assert.equal(capped?.bytes, 4);
    assert.equal(text((await session.read(capped?.uri ?? "")).bytes), "abcd");
    const aborted = session.writer({ name: "x", mimeType: "text/plain", description: "x", maxBytes: 100 });
    aborted.write(bytes("gone"));
    aborted.abort();
    assert.equal(aborted.commit(4), null);
    const empty = session.writer({ name: "y", mimeType: "text/plain", description: "y", maxBytes: 100 });
    assert.equal(empty.commit(0), null);
    assert.equal([...Deno.readDirSync(dir)].length, 1);
    assert.equal(store.usedBytes, 4);
  });
});

Deno.test("parseOutputUri() reads the id and the range", () => {
  assert.deepEqual(parseOutputUri("code-runner://outputs/abc/stdout.txt"), {
    id: "abc",
    offset: 0,
    length: null,
  });
  assert.deepEqual(parseOutputUri("code-runner://outputs/abc/x.bin?offset=10&length=20"), {
    id: "abc",
    offset: 10,
    length: 20,
  });
  assert.throws(() => parseOutputUri("https://example.com/abc"), OutputNotFound);
  assert.throws(() => parseOutputUri("code-runner://outputs/abc/x?offset=1e3"), RangeError);
});
