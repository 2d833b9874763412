import assert from "node:assert/strict";
import { join } from "node:path";
import { listedFiles, NotAPackageUrl, PackageBroker } from "../../src/python/package_broker.ts";

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
    if (path === "/dist/dist-1.0-py3-none-any.whl") return new Response(serveWrongBytes ? "evil" : wheel);
    return new Response("nope", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const cacheDir = await Deno.makeTempDir();
  const broker = new PackageBroker({
    cacheDir,
    sources: { pyodideBaseUrl: `${base}/dist/`, indexUrls: [`${base}/simple`] },
    distributionHashes: () => Promise.resolve(new Map([["dist-1.0-py3-none-any.whl", wheelSha]])),
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
      assert.deepEqual(await Deno.readFile(file.path), wheel);
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
