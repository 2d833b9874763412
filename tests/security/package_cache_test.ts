/**
 * The shared package cache against the sandbox (issue 11, section 1): Python code that asks the server's
 * broker for a URL of its choosing, with a `#sha256=` of its choosing, must plant nothing in the cache; and a
 * file that is wrong on disk (poisoned, truncated) is detected and replaced instead of served.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../../src/sha256.ts";
import { startServer, type TestServer } from "../_helpers.ts";
import { startMirror } from "../_mirror.ts";
import { WHEELS } from "../fixtures/wheels.ts";

const wheel = (project: string) => {
  const found = WHEELS.find((candidate) => candidate.project === project);
  assert(found, project);
  return found;
};
const HUMANIZE = wheel("humanize");
const SIX = wheel("six");

/** Every regular file under `dir` (snapshots aside: they have their own store and checks). */
async function cacheFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const entries = await Array.fromAsync(Deno.readDir(dir)).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory && entry.name !== "snapshots") found.push(...await cacheFiles(path));
    else if (entry.isFile) found.push(path);
  }
  return found;
}

/** Asserts that every cached file named by a sha256 holds exactly that, and that none holds `forbidden`. */
async function assertCacheClean(dir: string, forbidden: Uint8Array[]): Promise<void> {
  const forbiddenHashes = new Set(await Promise.all(forbidden.map((bytes) => sha256Hex(bytes))));
  for (const path of await cacheFiles(dir)) {
    const actual = await sha256Hex(await Deno.readFile(path));
    assert(!forbiddenHashes.has(actual), `${path} holds what the attacker sent`);
    const named = path.split("/").pop()?.match(/^[0-9a-f]{64}/)?.[0];
    if (named) assert.equal(actual, named, `${path} does not hold what its name says`);
  }
}

/** Overwrites every cached copy of `sha256` (whatever its file name) with `bytes`; returns how many. */
async function poison(dir: string, sha256: string, bytes: Uint8Array): Promise<number> {
  let count = 0;
  for (const path of await cacheFiles(join(dir, "files"))) {
    if (!path.split("/").pop()?.startsWith(sha256)) continue;
    await Deno.writeFile(path, bytes);
    count++;
  }
  return count;
}

/** A wheel whose `six` module says it is not the real one: what an attacker would plant. */
function evilSixWheel(): Uint8Array {
  return storedZip({
    "six.py": "__version__ = '1.17.0'\nPWNED = 'attacker code ran'\n",
    "six-1.17.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n",
    "six-1.17.0.dist-info/WHEEL":
      "Wheel-Version: 1.0\nGenerator: evil\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    "six-1.17.0.dist-info/top_level.txt": "six\n",
    "six-1.17.0.dist-info/RECORD": "",
  });
}

async function pyfetch(server: TestServer, url: string): Promise<string> {
  const { result, text } = await server.py(
    [
      "from pyodide.http import pyfetch",
      "try:",
      `    r = await pyfetch(${JSON.stringify(url)})`,
      "    outcome = f'HTTP {r.status}'",
      "except Exception as e:",
      "    outcome = type(e).__name__",
      "outcome",
    ].join("\n"),
  );
  assert.equal(result.status, "ok", text);
  return result.result ?? "";
}

Deno.test("sandboxed Python cannot poison the package cache, and a bad cached file is replaced", async (t) => {
  const mirror = await startMirror();
  const cacheDir = await Deno.makeTempDir({ prefix: "code-runner-cache-attack-" });
  const env = {
    CODE_RUNNER_PYODIDE_PACKAGES_URL: mirror.pyodideUrl,
    CODE_RUNNER_PYPI_INDEX_URLS: mirror.indexUrl,
    CODE_RUNNER_PACKAGE_CACHE_DIR: cacheDir,
  };
  const evil = evilSixWheel();
  let server = await startServer(env);
  try {
    await t.step("pyfetch of an unlisted URL with a chosen #sha256 plants nothing", async () => {
      // The reproduction from the issue: an empty 404 stored as the humanize wheel.
      await pyfetch(
        server,
        `${mirror.indexUrl}/zz-no-such-project/${HUMANIZE.filename}#sha256=${HUMANIZE.sha256}`,
      );
      // An index that answers 404 with a wheel in the body, named as a distribution package the loader
      // installs without checking hashes itself.
      mirror.notFoundBody = evil;
      try {
        for (
          const url of [
            `${mirror.indexUrl}/zz-no-such-project/${SIX.filename}#sha256=${SIX.sha256}`,
            `${mirror.indexUrl}/zz-no-such-project/`,
            `${mirror.indexUrl}/zz-no-such-project/?${SIX.filename}#sha256=${SIX.sha256}`,
            `${mirror.pyodideUrl}zz-${SIX.filename}#sha256=${SIX.sha256}`,
            `${mirror.pyodideUrl}${SIX.filename}?variant=1#sha256=${SIX.sha256}`,
          ]
        ) {
          await pyfetch(server, url);
        }
      } finally {
        mirror.notFoundBody = null;
      }
      await assertCacheClean(cacheDir, [evil, new TextEncoder().encode("not found")]);
    });

    await t.step("later installs, in a new session and a new server, get the real packages", async () => {
      const fresh = await server.py("import humanize\nhumanize.intcomma(1234567)", { reset: true });
      assert.equal(fresh.result.result, "'1,234,567'", fresh.text);
      const six = await server.py("import six\ngetattr(six, 'PWNED', 'clean')");
      assert.equal(six.result.result, "'clean'", six.text);
      await server.close();
      server = await startServer(env);
      const again = await server.py(
        "import six, humanize\n(getattr(six, 'PWNED', 'clean'), humanize.intcomma(1000))",
      );
      assert.equal(again.result.result, "('clean', '1,000')", again.text);
      await assertCacheClean(cacheDir, [evil]);
    });

    await t.step("a poisoned or truncated file in the cache is detected and replaced", async () => {
      const real = await Deno.readFile(new URL(`../fixtures/wheels/${HUMANIZE.filename}`, import.meta.url));
      for (
        const [what, bytes] of [["poisoned", evil], ["truncated", real.slice(0, real.length >> 1)]] as const
      ) {
        assert.ok(await poison(cacheDir, SIX.sha256, evil) > 0, `six is cached (${what})`);
        assert.ok(await poison(cacheDir, HUMANIZE.sha256, bytes) > 0, `humanize is cached (${what})`);
        const { result, text } = await server.py(
          "import six, humanize\n(getattr(six, 'PWNED', 'clean'), humanize.intcomma(1000))",
          { reset: true },
        );
        assert.equal(result.result, "('clean', '1,000')", `${what}: ${text}`);
        await assertCacheClean(cacheDir, [evil]);
      }
      // A new server process, which has verified nothing yet, checks what it reads as well.
      assert.ok(await poison(cacheDir, SIX.sha256, evil) > 0);
      await server.close();
      server = await startServer(env);
      const { result, text } = await server.py("import six\ngetattr(six, 'PWNED', 'clean')");
      assert.equal(result.result, "'clean'", text);
      await assertCacheClean(cacheDir, [evil]);
    });
  } finally {
    await server.close();
    await mirror.stop();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

// A minimal zip writer (stored entries, no compression): enough for a wheel that Pyodide installs.
function storedZip(files: Record<string, string>): Uint8Array {
  const encoder = new TextEncoder();
  const local: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, text] of Object.entries(files)) {
    const nameBytes = encoder.encode(name);
    const data = encoder.encode(text);
    const crc = crc32(data);
    const header = new DataView(new ArrayBuffer(30));
    header.setUint32(0, 0x04034b50, true);
    header.setUint16(4, 20, true);
    header.setUint16(12, 33, true); // 1980-01-01
    header.setUint32(14, crc, true);
    header.setUint32(18, data.length, true);
    header.setUint32(22, data.length, true);
    header.setUint16(26, nameBytes.length, true);
    local.push(new Uint8Array(header.buffer), nameBytes, data);
    const entry = new DataView(new ArrayBuffer(46));
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true);
    entry.setUint16(6, 20, true);
    entry.setUint16(14, 33, true);
    entry.setUint32(16, crc, true);
    entry.setUint32(20, data.length, true);
    entry.setUint32(24, data.length, true);
    entry.setUint16(28, nameBytes.length, true);
    entry.setUint32(42, offset, true);
    central.push(new Uint8Array(entry.buffer), nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const centralSize = central.reduce((sum, part) => sum + part.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, Object.keys(files).length, true);
  end.setUint16(10, Object.keys(files).length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset, true);
  const parts = [...local, ...central, new Uint8Array(end.buffer)];
  const zip = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    zip.set(part, at);
    at += part.length;
  }
  return zip;
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}
