import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type BrokerSession,
  listedFiles,
  NotAPackageUrl,
  PackageBroker,
  type PackageCacheLimits,
} from "../../src/python/package_broker.ts";
import { sha256Hex } from "../../src/sha256.ts";
import { eventually } from "../_helpers.ts";
import { type Mirror, startMirror } from "../_mirror.ts";
import { type Wheel, WHEELS } from "../fixtures/wheels.ts";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

Deno.test("listedFiles() reads PEP 503 HTML, PEP 691 JSON and the PyPI JSON API", async (t) => {
  await t.step("HTML with hash fragments, relative links and metadata attributes", () => {
    const html =
      `<a href="../../files/a-1.0-py3-none-any.whl#sha256=${SHA_A}" data-dist-info-metadata="sha256=${SHA_B}">a</a>
      <a href='https://files.example/b-2.0.tar.gz'>b</a>`;
    assert.deepEqual(
      [...listedFiles("https://index.example/simple/a/", "text/html", html)],
      [
        ["https://index.example/files/a-1.0-py3-none-any.whl", SHA_A],
        ["https://index.example/files/a-1.0-py3-none-any.whl.metadata", SHA_B],
        ["https://files.example/b-2.0.tar.gz", null],
      ],
    );
  });
  await t.step("PEP 691 JSON", () => {
    const json = JSON.stringify({
      files: [{
        filename: "a-1.0-py3-none-any.whl",
        url: "https://f.example/a.whl",
        hashes: { sha256: SHA_A },
      }],
    });
    assert.deepEqual(
      [...listedFiles("https://index.example/simple/a/", "application/vnd.pypi.simple.v1+json", json)],
      [["https://f.example/a.whl", SHA_A]],
    );
  });
  await t.step("PyPI JSON API", () => {
    const json = JSON.stringify({
      urls: [{ filename: "a.whl", url: "https://f.example/a.whl", digests: { sha256: SHA_B } }],
    });
    assert.deepEqual([...listedFiles("https://pypi.example/pypi/a/json", "application/json", json)], [[
      "https://f.example/a.whl",
      SHA_B,
    ]]);
  });
  await t.step("garbage lists nothing", () => {
    assert.equal(listedFiles("https://i.example/", "application/json", "{not json").size, 0);
    assert.equal(listedFiles("https://i.example/", "text/html", "<p>nothing</p>").size, 0);
  });
});

Deno.test("PackageBroker fetches only from its sources, verifies hashes and serves from its cache", async (t) => {
  const wheel = new TextEncoder().encode("wheel bytes");
  const wheelSha = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", wheel)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const distWheel = new TextEncoder().encode("distribution wheel bytes");
  const distSha = await sha256Hex(distWheel);
  const hits: string[] = [];
  let serveWrongBytes = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    hits.push(path);
    if (path === "/simple/pkg/") {
      return new Response(`<a href="/files/pkg-1.0-py3-none-any.whl#sha256=${wheelSha}">pkg</a>`, {
        headers: { "content-type": "text/html" },
      });
    }
    if (path === "/files/pkg-1.0-py3-none-any.whl") return new Response(serveWrongBytes ? "evil" : wheel);
    if (path === "/dist/dist-1.0-py3-none-any.whl") return new Response(serveWrongBytes ? "evil" : distWheel);
    return new Response("nope", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const cacheDir = await Deno.makeTempDir();
  const broker = new PackageBroker({
    cacheDir,
    sources: { pyodideBaseUrl: `${base}/dist/`, indexUrls: [`${base}/simple`] },
    distributionHashes: () => Promise.resolve(new Map([["dist-1.0-py3-none-any.whl", distSha]])),
  });
  try {
    await t.step("refuses URLs outside the sources", async () => {
      for (
        const url of [
          `${base}/files/other.whl`,
          "https://evil.example/simple/pkg/",
          `${base}/simplex/`,
          `${base}/simple/../files/x.whl`,
          "file:///etc/passwd",
        ]
      ) {
        await assert.rejects(broker.fetch(url), NotAPackageUrl, url);
      }
    });
    await t.step("a wheel listed by an index page is fetched, verified and cached", async () => {
      const page = await broker.fetch(`${base}/simple/pkg/`, { accept: "text/html" });
      assert.equal(page.status, 200);
      serveWrongBytes = true;
      await assert.rejects(broker.fetch(`${base}/files/pkg-1.0-py3-none-any.whl`), /sha256/);
      serveWrongBytes = false;
      const file = await broker.fetch(`${base}/files/pkg-1.0-py3-none-any.whl`);
      assert.deepEqual(await Deno.readFile(file.path), wheel);
      assert.ok(file.path.startsWith(join(cacheDir, "files")));
    });
    await t.step("a distribution file is checked against the lock's hash", async () => {
      serveWrongBytes = true;
      await assert.rejects(broker.fetch(`${base}/dist/dist-1.0-py3-none-any.whl`), /sha256/);
      serveWrongBytes = false;
      const file = await broker.fetch(`${base}/dist/dist-1.0-py3-none-any.whl`);
      assert.deepEqual(await Deno.readFile(file.path), distWheel);
    });
    await server.shutdown();
    await t.step("with the sources gone, cached files and pages are still served", async () => {
      const offline = new PackageBroker({ ...broker.options });
      const page = await offline.fetch(`${base}/simple/pkg/`, { accept: "text/html" });
      assert.equal(page.status, 200);
      const file = await offline.fetch(`${base}/files/pkg-1.0-py3-none-any.whl`);
      assert.deepEqual(await Deno.readFile(file.path), wheel);
    });
  } finally {
    await server.shutdown().catch(() => {});
    await Deno.remove(cacheDir, { recursive: true });
  }
});

/** The sha256s of the pinned wheels, as a lock file gives them, by file name. */
const LOCK_HASHES = new Map(WHEELS.map((wheel) => [wheel.filename, wheel.sha256]));
const byProject = (project: string): Wheel => {
  const found = WHEELS.find((wheel) => wheel.project === project);
  assert(found, project);
  return found;
};

/** A broker on a fresh cache directory, with the mirror as its sources. */
async function mirrorBroker(mirror: Mirror, limits: Partial<PackageCacheLimits> = {}, cacheDir?: string) {
  const dir = cacheDir ?? await Deno.makeTempDir({ prefix: "code-runner-broker-" });
  return new PackageBroker({
    cacheDir: dir,
    sources: { pyodideBaseUrl: mirror.pyodideUrl, indexUrls: [mirror.indexUrl] },
    distributionHashes: () => Promise.resolve(LOCK_HASHES),
    limits,
  });
}

/** What micropip does: the project's page, then the wheel it lists. */
async function install(broker: PackageBroker | BrokerSession, mirror: Mirror, wheel: Wheel) {
  const page = await broker.fetch(`${mirror.indexUrl}/${wheel.project}/`, {
    accept: "application/vnd.pypi.simple.v1+json, */*;q=0.01",
  });
  assert.equal(page.status, 200);
  return await broker.fetch(`${new URL(mirror.indexUrl).origin}/files/${wheel.filename}`);
}

/** Names of the files in a cache subdirectory. */
async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir)).catch(() => [])).map((entry) => entry.name).sort();
}

async function assertHolds(path: string, sha256: string): Promise<void> {
  assert.equal(await sha256Hex(await Deno.readFile(path)), sha256, path);
}

Deno.test("PackageBroker stores only files whose hash came from a trusted source", async (t) => {
  const mirror = await startMirror();
  const broker = await mirrorBroker(mirror);
  const humanize = byProject("humanize");
  const six = byProject("six");
  try {
    await t.step("a #sha256 on an unlisted URL counts for nothing, and nothing is fetched", async () => {
      for (
        const url of [
          `${mirror.indexUrl}/zz-no-such-project/${humanize.filename}#sha256=${humanize.sha256}`,
          `${new URL(mirror.indexUrl).origin}/files/${humanize.filename}#sha256=${humanize.sha256}`,
        ]
      ) {
        await assert.rejects(broker.fetch(url), /not listed|not from a configured/, url);
      }
      assert.deepEqual(mirror.requests, []);
      assert.deepEqual(await names(join(broker.cacheDir, "files")), []);
    });
    await t.step("an error answer is passed on with an empty body and never stored", async () => {
      mirror.notFoundBody = await Deno.readFile(
        new URL(`../fixtures/wheels/${six.filename}`, import.meta.url),
      );
      try {
        const page = await broker.fetch(`${mirror.indexUrl}/zz-no-such-project/`);
        assert.equal(page.status, 404);
        assert.equal((await Deno.readFile(page.path)).length, 0);
        await assert.rejects(
          broker.fetch(`${mirror.pyodideUrl}zz-${six.filename}`),
          /not in the distribution/,
        );
        const pages = await names(join(broker.cacheDir, "pages"));
        assert.ok(!pages.some((name) => name.startsWith("page-")), `no page was recorded: ${pages}`);
      } finally {
        mirror.notFoundBody = null;
      }
    });
    await t.step("a wheel an index page lists is stored under the page's hash", async () => {
      const file = await install(broker, mirror, humanize);
      assert.equal(file.path, join(broker.cacheDir, "files", humanize.sha256));
      await assertHolds(file.path, humanize.sha256);
    });
    await t.step("a distribution file is stored under the lock's hash", async () => {
      const file = await broker.fetch(`${mirror.pyodideUrl}${six.filename}#sha256=${"0".repeat(64)}`);
      assert.equal(file.path, join(broker.cacheDir, "files", six.sha256));
      await assertHolds(file.path, six.sha256);
    });
    await t.step("a file listed without a hash is refused", async () => {
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        (request) =>
          new URL(request.url).pathname === "/simple/bare/"
            ? new Response(`<a href="/files/bare-1.0-py3-none-any.whl">bare</a>`, {
              headers: { "content-type": "text/html" },
            })
            : new Response("wheel"),
      );
      const base = `http://127.0.0.1:${server.addr.port}`;
      const bare = new PackageBroker({
        cacheDir: broker.cacheDir,
        sources: { pyodideBaseUrl: `${base}/dist/`, indexUrls: [`${base}/simple`] },
        distributionHashes: () => Promise.resolve(new Map()),
      });
      try {
        await bare.fetch(`${base}/simple/bare/`);
        await assert.rejects(bare.fetch(`${base}/files/bare-1.0-py3-none-any.whl`), /without a sha256/);
      } finally {
        await server.shutdown();
      }
    });
    await t.step("every file in the cache holds what its name says", async () => {
      for (const dir of ["files", "pages", "dist"]) {
        for (const name of await names(join(broker.cacheDir, dir))) {
          const named = name.match(/^([0-9a-f]{64})(\.body)?$/)?.[1];
          if (named) await assertHolds(join(broker.cacheDir, dir, name), named);
          else assert.match(name, /^page-[0-9a-f]{64}\.json$/);
        }
      }
    });
  } finally {
    await mirror.stop();
    await Deno.remove(broker.cacheDir, { recursive: true });
  }
});

Deno.test("PackageBroker detects a poisoned or truncated cached file and replaces it", async (t) => {
  const mirror = await startMirror();
  const broker = await mirrorBroker(mirror);
  const humanize = byProject("humanize");
  const real = await Deno.readFile(new URL(`../fixtures/wheels/${humanize.filename}`, import.meta.url));
  const path = join(broker.cacheDir, "files", humanize.sha256);
  const wheelRequests = () => mirror.requests.filter((request) => request.endsWith(".whl")).length;
  try {
    await install(broker, mirror, humanize);
    for (
      const [what, bytes] of [
        ["poisoned", new TextEncoder().encode("not a wheel")],
        ["truncated", real.slice(0, real.length - 1)],
        ["same size, other bytes", real.map((byte, i) => i === 100 ? byte ^ 1 : byte)],
      ] as const
    ) {
      await t.step(`${what}: the same broker`, async () => {
        const before = wheelRequests();
        await Deno.writeFile(path, bytes);
        const file = await install(broker, mirror, humanize);
        await assertHolds(file.path, humanize.sha256);
        assert.equal(wheelRequests(), before + 1, "downloaded again");
      });
      await t.step(`${what}: a new broker (another process, or after a restart)`, async () => {
        await Deno.writeFile(path, bytes);
        const fresh = await mirrorBroker(mirror, {}, broker.cacheDir);
        const file = await install(fresh, mirror, humanize);
        await assertHolds(file.path, humanize.sha256);
      });
    }
    await t.step("a good cached file is served without the network", async () => {
      const before = wheelRequests();
      const file = await install(await mirrorBroker(mirror, {}, broker.cacheDir), mirror, humanize);
      await assertHolds(file.path, humanize.sha256);
      assert.equal(wheelRequests(), before);
    });
  } finally {
    await mirror.stop();
    await Deno.remove(broker.cacheDir, { recursive: true });
  }
});

Deno.test("PackageBroker keys index pages on what the server sends, not on what the requester varies", async () => {
  const mirror = await startMirror();
  const broker = await mirrorBroker(mirror);
  try {
    const page = `${mirror.indexUrl}/humanize/`;
    for (
      const [url, accept] of [
        [page, "text/html"],
        [`${page}?x=1`, "text/html; q=0.5"],
        [`${page}?x=2#frag`, "text/plain"],
        [`${page}?${"y".repeat(1000)}`, undefined],
        [page, "application/vnd.pypi.simple.v1+json"],
        [`${page}?x=3`, "application/vnd.pypi.simple.v1+json, */*;q=0.01"],
        [page, "application/json; charset=utf-8"],
      ] as const
    ) {
      const response = await broker.fetch(url, accept === undefined ? {} : { accept });
      assert.equal(response.status, 200, url);
    }
    // One HTML and one JSON page, fetched once each, from the URL without its query.
    assert.deepEqual(mirror.requests, ["/simple/humanize/", "/simple/humanize/"]);
    const pages = await names(join(broker.cacheDir, "pages"));
    assert.equal(pages.filter((name) => name.startsWith("page-")).length, 2, pages.join(" "));
    assert.equal(pages.filter((name) => name.endsWith(".body")).length, 2, pages.join(" "));
  } finally {
    await mirror.stop();
    await Deno.remove(broker.cacheDir, { recursive: true });
  }
});

Deno.test("PackageBroker streams downloads to disk and stops at the size limit", async (t) => {
  // An index whose page and wheel never end.
  const endless = () =>
    new ReadableStream<Uint8Array>({ pull: (controller) => controller.enqueue(new Uint8Array(64 * 1024)) });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/simple/big/") {
      return new Response(
        `<a href="/files/big-1.0-py3-none-any.whl#sha256=${"a".repeat(64)}">big</a>` +
          `<a href="/files/huge-1.0-py3-none-any.whl#sha256=${"a".repeat(64)}">huge</a>`,
        { headers: { "content-type": "text/html" } },
      );
    }
    if (path === "/files/huge-1.0-py3-none-any.whl") {
      return new Response(endless(), { headers: { "content-length": String(1024 ** 3) } });
    }
    return new Response(endless(), { headers: { "content-type": "text/html" } });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-broker-" });
  const broker = new PackageBroker({
    cacheDir,
    sources: { pyodideBaseUrl: `${base}/dist/`, indexUrls: [`${base}/simple`] },
    distributionHashes: () => Promise.resolve(new Map()),
    limits: { maxFileBytes: 1024 * 1024 },
  });
  try {
    await broker.fetch(`${base}/simple/big/`);
    await t.step("a body without end is cut at the limit", async () => {
      await assert.rejects(broker.fetch(`${base}/files/big-1.0-py3-none-any.whl`), /larger than the limit/);
      await assert.rejects(broker.fetch(`${base}/simple/endless/`), /larger than the limit/);
    });
    await t.step("a declared length over the limit is refused before reading", async () => {
      await assert.rejects(broker.fetch(`${base}/files/huge-1.0-py3-none-any.whl`), /larger than the limit/);
    });
    await t.step("nothing is left behind", async () => {
      assert.deepEqual(await names(join(cacheDir, "files")), []);
      assert.ok(!(await names(join(cacheDir, "pages"))).some((name) => name.endsWith(".tmp")));
    });
  } finally {
    await server.shutdown();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("PackageBroker keeps the cache under its size, least recently used first out", async () => {
  const mirror = await startMirror();
  const [six, unidecode, slugify, humanize] = ["six", "text-unidecode", "python-slugify", "humanize"].map(
    byProject,
  ) as [Wheel, Wheel, Wheel, Wheel];
  // Room for slugify and humanize with their pages, not for six and text-unidecode too.
  const broker = await mirrorBroker(mirror, { maxCacheBytes: 160_000, maxFileBytes: 150_000 });
  const files = join(broker.cacheDir, "files");
  try {
    const lock = await broker.fetch(`${mirror.pyodideUrl}pyodide-lock.json`);
    await broker.fetch(`${mirror.pyodideUrl}${six.filename}`);
    await install(broker, mirror, unidecode);
    await install(broker, mirror, slugify);
    // Last used: six 3 hours ago, text-unidecode 2, slugify 1; the lock file longest ago of all.
    const lastUsed: Array<[string, number]> = [
      [lock.path, 9],
      [join(files, six.sha256), 3],
      [join(files, unidecode.sha256), 2],
      [join(files, slugify.sha256), 1],
    ];
    for (const [path, hours] of lastUsed) {
      const then = new Date(Date.now() - hours * 3600_000);
      await Deno.utime(path, then, then);
    }
    const stale = join(files, ".left-by-a-dead-process.tmp");
    await Deno.writeTextFile(stale, "half a wheel");
    await Deno.utime(stale, new Date(0), new Date(0));
    await install(broker, mirror, humanize);
    assert.deepEqual(await names(files), [slugify.sha256, humanize.sha256].sort());
    assert.ok(await Deno.stat(lock.path).then(() => true, () => false), "the lock file is never evicted");
    // An evicted file is simply downloaded again.
    await install(broker, mirror, unidecode);
    await assertHolds(join(files, unidecode.sha256), unidecode.sha256);
  } finally {
    await mirror.stop();
    await Deno.remove(broker.cacheDir, { recursive: true });
  }
});

/** An index whose files and pages are answered only when the test opens the gate. */
function gatedIndex(fileCount: number) {
  const bodies = Array.from({ length: fileCount }, (_, i) => new TextEncoder().encode(`wheel ${i}`));
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => {};
  const state = {
    active: 0,
    maxActive: 0,
    started: 0,
    abandoned: 0,
    /** Holds every file and page until {@linkcode state.open}. */
    close: () => gate = new Promise<void>((resolve) => open = resolve),
    open: () => open(),
  };
  state.close();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/simple/pkg/") {
      const links = await Promise.all(
        bodies.map(async (body, i) =>
          `<a href="/files/f${i}-1.0-py3-none-any.whl#sha256=${await sha256Hex(body)}">f${i}</a>`
        ),
      );
      return new Response(links.join("\n"), { headers: { "content-type": "text/html" } });
    }
    state.started++;
    state.active++;
    state.maxActive = Math.max(state.maxActive, state.active);
    let gone = false;
    await Promise.race([
      gate,
      new Promise<void>((resolve) =>
        request.signal.addEventListener("abort", () => {
          gone = true;
          resolve();
        }, { once: true })
      ),
    ]);
    state.active--;
    if (gone) {
      state.abandoned++;
      return new Response(null, { status: 499 });
    }
    const index = Number(path.match(/\/files\/f(\d+)-/)?.[1] ?? NaN);
    return bodies[index] ? new Response(bodies[index]) : new Response("<p>page</p>");
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  return {
    state,
    base,
    fileUrl: (i: number) => `${base}/files/f${i}-1.0-py3-none-any.whl`,
    body: (i: number) => bodies[i] as Uint8Array,
    broker: (cacheDir: string, limits: Partial<PackageCacheLimits> = {}) =>
      new PackageBroker({
        cacheDir,
        sources: { pyodideBaseUrl: `${base}/dist/`, indexUrls: [`${base}/simple`] },
        distributionHashes: () => Promise.resolve(new Map()),
        limits,
      }),
    stop: async () => {
      state.open();
      await server.shutdown();
    },
  };
}

Deno.test("a download shared by two sessions goes on when the first session's host dies", async (t) => {
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-broker-" });
  const index = gatedIndex(2);
  const broker = index.broker(cacheDir);
  try {
    await broker.fetch(`${index.base}/simple/pkg/`);
    await t.step("sessions: closing one ends only its own wait", async () => {
      const first = broker.session();
      const second = broker.session();
      const dying = first.fetch(index.fileUrl(0));
      const living = second.fetch(index.fileUrl(0));
      assert.ok(await eventually(() => index.state.started === 1));
      first.close(new Error("the Python process exited"));
      await assert.rejects(dying, /the Python process exited/);
      index.state.open();
      const { path } = await living;
      assert.deepEqual(await Deno.readFile(path), index.body(0));
      assert.equal(index.state.started, 1, "one download for both");
      second.close();
    });
    await t.step(
      "signals (as HostProcess passes them): aborting one caller's ends only its wait",
      async () => {
        index.state.close();
        const first = new AbortController();
        const dying = broker.fetch(index.fileUrl(1), { signal: first.signal });
        const living = broker.fetch(index.fileUrl(1), { signal: new AbortController().signal });
        assert.ok(await eventually(() => index.state.started === 2));
        first.abort(new Error("the Python process exited"));
        await assert.rejects(dying, /the Python process exited/);
        index.state.open();
        const { path } = await living;
        assert.deepEqual(await Deno.readFile(path), index.body(1));
        assert.equal(index.state.started, 2, "one download for both");
      },
    );
  } finally {
    await index.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a download nobody waits for any more is aborted", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-broker-" });
  const index = gatedIndex(1);
  const broker = index.broker(cacheDir);
  try {
    await broker.fetch(`${index.base}/simple/pkg/`);
    const sessions = [broker.session(), broker.session()];
    const waits = sessions.map((session) => session.fetch(index.fileUrl(0)));
    assert.ok(await eventually(() => index.state.started === 1));
    for (const session of sessions) session.close();
    for (const wait of waits) await assert.rejects(wait);
    assert.ok(await eventually(() => index.state.abandoned === 1), "the mirror saw the download end");
    assert.deepEqual(await names(join(cacheDir, "files")), []);
  } finally {
    await index.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a session has at most its cap of downloads in progress; the rest queue", async (t) => {
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-broker-" });
  const index = gatedIndex(5);
  const broker = index.broker(cacheDir, { downloadsPerSession: 2 });
  try {
    await broker.fetch(`${index.base}/simple/pkg/`);
    await t.step("five wheels, two at a time", async () => {
      const session = broker.session();
      const waits = [0, 1, 2, 3, 4].map((i) => session.fetch(index.fileUrl(i)));
      assert.ok(await eventually(() => index.state.started === 2));
      index.state.open();
      const results = await Promise.all(waits);
      for (const [i, result] of results.entries()) {
        assert.deepEqual(await Deno.readFile(result.path), index.body(i));
      }
      assert.equal(index.state.maxActive, 2);
      session.close();
    });
  } finally {
    await index.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a session's queue is bounded, and closing the session ends every wait", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-broker-" });
  const index = gatedIndex(0);
  const broker = index.broker(cacheDir, { downloadsPerSession: 2 });
  const session = broker.session();
  try {
    // Pages of 258 projects: two in progress, 256 queued; one more is refused.
    const waits = Array.from({ length: 258 }, (_, i) => session.fetch(`${index.base}/simple/p${i}/`));
    await assert.rejects(session.fetch(`${index.base}/simple/one-too-many/`), /too many package downloads/);
    assert.ok(await eventually(() => index.state.started === 2));
    session.close(new Error("the Python process exited"));
    const outcomes = await Promise.allSettled(waits);
    assert.ok(outcomes.every((outcome) => outcome.status === "rejected"));
    await assert.rejects(session.fetch(`${index.base}/simple/later/`), /the Python process exited/);
    assert.ok(await eventually(() => index.state.abandoned === 2));
    assert.equal(index.state.started, 2);
  } finally {
    await index.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

// Spawns processes: part of `deno task test` (-A), skipped by `deno task test:unit`, which grants no --allow-run.
const mayRun = (await Deno.permissions.query({ name: "run" })).state === "granted";

Deno.test({
  name: "three processes installing the same wheel into one cache directory at once all get it whole",
  ignore: !mayRun,
}, async () => {
  const mirror = await startMirror();
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-shared-cache-" });
  const humanize = byProject("humanize");
  let open: () => void = () => {};
  mirror.gate = new Promise<void>((resolve) => open = resolve);
  // Each process: a broker of its own on the shared directory, fetching the page and then the wheel.
  const script = `
    import { PackageBroker } from ${
    JSON.stringify(new URL("../../src/python/package_broker.ts", import.meta.url).href)
  };
    const broker = new PackageBroker({
      cacheDir: ${JSON.stringify(cacheDir)},
      sources: { pyodideBaseUrl: ${JSON.stringify(mirror.pyodideUrl)}, indexUrls: [${
    JSON.stringify(mirror.indexUrl)
  }] },
      distributionHashes: () => Promise.resolve(new Map()),
    });
    await broker.fetch(${
    JSON.stringify(`${mirror.indexUrl}/humanize/`)
  }, { accept: "application/vnd.pypi.simple.v1+json" });
    const { path } = await broker.fetch(${
    JSON.stringify(`${new URL(mirror.indexUrl).origin}/files/${humanize.filename}`)
  });
    console.log(path);
  `;
  const children = [0, 1, 2].map(() =>
    new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", "--quiet", script],
      stdout: "piped",
      stderr: "piped",
    }).spawn()
  );
  try {
    // All three are downloading before any gets a byte.
    assert.ok(
      await eventually(() => mirror.requests.filter((path) => path.endsWith(".whl")).length === 3, 60_000),
      `requests: ${mirror.requests.join(" ")}`,
    );
    open();
    const outputs = await Promise.all(children.map((child) => child.output()));
    for (const output of outputs) {
      assert.ok(output.success, new TextDecoder().decode(output.stderr));
      const path = new TextDecoder().decode(output.stdout).trim();
      assert.equal(path, join(cacheDir, "files", humanize.sha256));
    }
    await assertHolds(join(cacheDir, "files", humanize.sha256), humanize.sha256);
    assert.deepEqual(await names(join(cacheDir, "files")), [humanize.sha256], "no temp file is left");
  } finally {
    open();
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    await Promise.all(children.map((child) => child.status));
    await mirror.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
});
