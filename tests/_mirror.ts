/**
 * A package mirror on loopback for the Python tests, playing both sources a firewalled user would
 * configure: a Pyodide distribution (`/pyodide/`: pyodide-lock.json and wheels) and a PEP 503/691 simple
 * index (`/simple/<project>/`, files under `/files/`). It serves real wheels from PyPI (tests/fixtures).
 */
import { pyodideRuntime } from "../src/python/distribution.ts";
import { type Wheel, wheelBytes, WHEELS } from "./fixtures/wheels.ts";

/** A running mirror. */
export interface Mirror {
  /** Value for CODE_RUNNER_PYODIDE_PACKAGES_URL. */
  pyodideUrl: string;
  /** Value for CODE_RUNNER_PYPI_INDEX_URLS. */
  indexUrl: string;
  /** Paths requested so far. */
  requests: string[];
  /** Serve garbage instead of wheels (tests of hash verification). */
  corrupt: boolean;
  /** Delay before each wheel is served, in milliseconds. */
  delayMs: number;
  /** Body of every 404 answer instead of "not found" (an index that answers 404 with a wheel in the body). */
  notFoundBody: Uint8Array | null;
  /** While set, wheels are served only once it resolves (tests of downloads in flight). */
  gate: Promise<void> | null;
  stop(): Promise<void>;
}

const normalize = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");

/** Starts the mirror on a free loopback port. */
export async function startMirror(): Promise<Mirror> {
  const wheels = new Map<string, { wheel: Wheel; bytes: Uint8Array }>();
  for (const wheel of WHEELS) wheels.set(wheel.filename, { wheel, bytes: await wheelBytes(wheel) });
  // The distribution's lock file, with the wheels this mirror has in place of Pyodide's builds.
  const lock = JSON.parse(await Deno.readTextFile(`${pyodideRuntime().dir}pyodide-lock.json`));
  for (const { wheel } of wheels.values()) {
    const entry = lock.packages[wheel.project];
    if (entry) Object.assign(entry, { file_name: wheel.filename, sha256: wheel.sha256 });
  }
  const lockText = JSON.stringify(lock);

  const mirror: Mirror = {
    pyodideUrl: "",
    indexUrl: "",
    requests: [],
    corrupt: false,
    delayMs: 0,
    notFoundBody: null,
    gate: null,
    stop: async () => {},
  };
  const notFound = () =>
    new Response(mirror.notFoundBody ? mirror.notFoundBody as Uint8Array<ArrayBuffer> : "not found", {
      status: 404,
    });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const base = new URL(request.url).origin;
    const path = new URL(request.url).pathname;
    mirror.requests.push(path);
    const wheelResponse = async (name: string) => {
      // A client that gives up (the server's broker aborts downloads of a dead host) ends the wait.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, mirror.delayMs);
        request.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (mirror.gate) await mirror.gate;
      const found = wheels.get(decodeURIComponent(name));
      if (!found) return notFound();
      return new Response(mirror.corrupt ? "garbage" : found.bytes as Uint8Array<ArrayBuffer>);
    };
    if (path === "/pyodide/pyodide-lock.json") {
      return new Response(lockText, { headers: { "content-type": "application/json" } });
    }
    if (path.startsWith("/pyodide/")) return wheelResponse(path.slice("/pyodide/".length));
    if (path.startsWith("/files/")) return wheelResponse(path.slice("/files/".length));
    const project = path.match(/^\/simple\/([^/]+)\/$/)?.[1];
    if (project) {
      const files = [...wheels.values()].filter(({ wheel }) =>
        normalize(wheel.project) === normalize(project)
      );
      if (!files.length) return notFound();
      if ((request.headers.get("accept") ?? "").includes("application/vnd.pypi.simple.v1+json")) {
        return Response.json({
          meta: { "api-version": "1.1" },
          name: normalize(project),
          files: files.map(({ wheel }) => ({
            filename: wheel.filename,
            url: `${base}/files/${wheel.filename}`,
            hashes: { sha256: wheel.sha256 },
          })),
        }, { headers: { "content-type": "application/vnd.pypi.simple.v1+json" } });
      }
      const links = files.map(({ wheel }) =>
        `<a href="${base}/files/${wheel.filename}#sha256=${wheel.sha256}">${wheel.filename}</a><br/>`
      );
      return new Response(`<!DOCTYPE html><html><body>${links.join("\n")}</body></html>`, {
        headers: { "content-type": "text/html" },
      });
    }
    return notFound();
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  mirror.pyodideUrl = `${base}/pyodide/`;
  mirror.indexUrl = `${base}/simple`;
  mirror.stop = () => server.shutdown();
  return mirror;
}
