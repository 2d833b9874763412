/**
 * Downloads Python packages for the sandboxed host, on the server side, from the configured sources only,
 * into an on-disk cache the host may read but never write.
 *
 * Security: the host asks for URLs; this decides. A URL is fetched only when it lies under a configured
 * source (the Pyodide distribution, a package index) or was listed by an index page with its hash. Files
 * whose hash is known are verified before they enter the cache, and are served from it without the
 * network afterwards.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { sha256Hex } from "../sha256.ts";

/** Where packages come from. */
export interface PackageSources {
  /** Base URL of a Pyodide distribution (holds `pyodide-lock.json` and its wheels), ending in `/`. */
  pyodideBaseUrl: string;
  /** PEP 503/691 simple indexes, e.g. `https://pypi.org/simple`. */
  indexUrls: readonly string[];
}

/** A fetched response, as a file in the cache. */
export interface BrokeredResponse {
  path: string;
  status: number;
  contentType: string;
}

/** Thrown when a URL is not one the broker serves; the host may then use its own network, if allowed. */
export class NotAPackageUrl extends Error {
  override name = "NotAPackageUrl";
}

/** Names of package files (wheels, Pyodide's zipped shared libraries, sdists, core metadata). */
const PACKAGE_FILE = /\.(whl|zip|tar|tar\.gz|tgz|metadata)$/;

/** How long an index page is used from the cache before it is asked for again. */
const INDEX_FRESH_MS = 10 * 60 * 1000;
/** How long one download may take. */
const DOWNLOAD_TIMEOUT_MS = 120_000;

/** Options of {@linkcode PackageBroker}. */
export interface PackageBrokerOptions {
  cacheDir: string;
  sources: PackageSources;
  /** sha256 of each file of the Pyodide distribution, by file name, from its lock file (read when first needed). */
  distributionHashes: () => Promise<ReadonlyMap<string, string>>;
}

/**
 * Serves package downloads from a verified cache, fetching what is missing.
 *
 * @example
 * ```ts
 * const broker = new PackageBroker({ cacheDir, sources, distributionHashes });
 * const { path } = await broker.fetch("https://pypi.org/simple/attrs/", { accept: "text/html" });
 * ```
 */
export class PackageBroker {
  #known = new Map<string, string | null>();
  #inFlight = new Map<string, Promise<BrokeredResponse>>();

  constructor(readonly options: PackageBrokerOptions) {}

  /** The directory the host must be able to read. */
  get cacheDir(): string {
    return this.options.cacheDir;
  }

  /** Fetches `url` for the host, or throws {@linkcode NotAPackageUrl} / an error saying what failed. */
  fetch(
    url: string,
    options: { accept?: string; signal?: AbortSignal; onProgress?: (message: string) => void } = {},
  ): Promise<BrokeredResponse> {
    const key = `${url}\n${options.accept ?? ""}`;
    let pending = this.#inFlight.get(key);
    if (!pending) {
      pending = this.#fetch(url, options).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    return pending;
  }

  async #fetch(
    url: string,
    options: { accept?: string; signal?: AbortSignal; onProgress?: (message: string) => void },
  ): Promise<BrokeredResponse> {
    const parsed = URL.canParse(url) ? new URL(url) : null;
    if (!parsed || (parsed.protocol !== "https:" && parsed.protocol !== "http:")) {
      throw new NotAPackageUrl(`not an http(s) URL: ${url}`);
    }
    const { pyodideBaseUrl, indexUrls } = this.options.sources;
    // Security: compare the normalized URL, so `…/simple/../elsewhere` cannot pass as under a source.
    const noFragment = parsed.href.split("#")[0] as string;
    if (noFragment.startsWith(pyodideBaseUrl) && noFragment.length > pyodideBaseUrl.length) {
      const name = decodeURIComponent(noFragment.slice(pyodideBaseUrl.length));
      // Package files are checked against the lock file; anything else there (the lock file itself) is
      // a page.
      if (!PACKAGE_FILE.test(name)) return await this.#page(noFragment, options);
      const sha256 = (await this.options.distributionHashes()).get(name);
      if (!sha256) throw new Error(`${name} is not in the distribution's lock file`);
      return await this.#file(noFragment, sha256, options);
    }
    const listed = this.#known.get(noFragment);
    if (listed !== undefined) return await this.#file(noFragment, listed ?? hashInFragment(url), options);
    if (indexUrls.some((index) => noFragment.startsWith(index.endsWith("/") ? index : `${index}/`))) {
      return PACKAGE_FILE.test(noFragment)
        ? await this.#file(noFragment, hashInFragment(url), options)
        : await this.#page(noFragment, options);
    }
    throw new NotAPackageUrl(`not from a configured package source: ${url}`);
  }

  /** A package file: immutable, verified when its hash is known, then served from the cache forever. */
  async #file(
    url: string,
    sha256: string | null,
    options: { signal?: AbortSignal; onProgress?: (message: string) => void },
  ): Promise<BrokeredResponse> {
    const name = basename(new URL(url).pathname);
    const path = join(this.cacheDir, "files", `${sha256 ?? await sha256Hex(url)}-${name}`);
    const contentType = "application/octet-stream";
    if (await exists(path)) return { path, status: 200, contentType };
    options.onProgress?.(`Downloading ${name}`);
    const response = await download(url, undefined, options.signal);
    if (!response.ok) return await this.#store(path, response, { status: response.status });
    const body = new Uint8Array(await response.arrayBuffer());
    if (sha256) {
      const actual = await sha256Hex(body);
      if (actual !== sha256) {
        throw new Error(
          `${name} from ${url} has sha256 ${actual}, but its source lists ${sha256}; not using it`,
        );
      }
    }
    await writeAtomically(path, body);
    options.onProgress?.(`Downloaded ${name} (${Math.round(body.length / 1024)} KiB)`);
    return { path, status: 200, contentType };
  }

  /** An index page: fresh copies for a while, the network after that, a stale copy when offline. */
  async #page(
    url: string,
    options: { accept?: string; signal?: AbortSignal },
  ): Promise<BrokeredResponse> {
    const key = await sha256Hex(`${url}\n${options.accept ?? ""}`);
    const path = join(this.cacheDir, "index", `${key}.body`);
    const metaPath = join(this.cacheDir, "index", `${key}.json`);
    const cached = await Deno.readTextFile(metaPath).then(
      (text) => JSON.parse(text) as { status: number; contentType: string; fetchedAt: number },
      () => null,
    );
    if (cached && Date.now() - cached.fetchedAt < INDEX_FRESH_MS) {
      await this.#learn(url, cached.contentType, path);
      return { path, status: cached.status, contentType: cached.contentType };
    }
    let response: Response;
    try {
      response = await download(url, options.accept, options.signal);
    } catch (error) {
      if (!cached) throw error;
      await this.#learn(url, cached.contentType, path);
      return { path, status: cached.status, contentType: cached.contentType };
    }
    const result = await this.#store(path, response, { status: response.status });
    await writeAtomically(
      metaPath,
      new TextEncoder().encode(
        JSON.stringify({ status: result.status, contentType: result.contentType, fetchedAt: Date.now() }),
      ),
    );
    await this.#learn(url, result.contentType, path);
    return result;
  }

  async #store(path: string, response: Response, { status }: { status: number }): Promise<BrokeredResponse> {
    const contentType = response.headers.get("content-type") ?? "application/octet-stream";
    await writeAtomically(path, new Uint8Array(await response.arrayBuffer()));
    return { path, status, contentType };
  }

  /** Remembers the files an index page lists, with their hashes, so they may be fetched. */
  async #learn(pageUrl: string, contentType: string, path: string): Promise<void> {
    const text = await Deno.readTextFile(path).catch(() => "");
    for (const [url, sha256] of listedFiles(pageUrl, contentType, text)) {
      if (!this.#known.get(url)) this.#known.set(url, sha256);
    }
  }
}

/**
 * The files an index page lists, as absolute URLs with their sha256 (or null): PEP 691 JSON, the PyPI JSON
 * API, or PEP 503 HTML. A file's core metadata (`<url>.metadata`) is listed too.
 */
export function listedFiles(pageUrl: string, contentType: string, text: string): Map<string, string | null> {
  const files = new Map<string, string | null>();
  const add = (href: string, sha256: string | null, metadataSha?: string | null) => {
    if (!URL.canParse(href, pageUrl)) return;
    const url = new URL(href, pageUrl);
    const hash = sha256 ?? url.hash.match(/sha256=([0-9a-f]{64})/)?.[1] ?? null;
    url.hash = "";
    files.set(url.href, hash);
    if (metadataSha !== undefined) files.set(`${url.href}.metadata`, metadataSha);
  };
  if (/json/.test(contentType)) {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      return files;
    }
    const visit = (node: unknown) => {
      if (Array.isArray(node)) return node.forEach(visit);
      if (!node || typeof node !== "object") return;
      const record = node as Record<string, unknown>;
      if (typeof record.url === "string" && (record.filename || record.digests || record.hashes)) {
        const hashes = (record.hashes ?? record.digests) as Record<string, unknown> | undefined;
        const meta = (record["core-metadata"] ?? record["dist-info-metadata"]) as unknown;
        const metaSha = meta && typeof meta === "object"
          ? (meta as Record<string, unknown>).sha256
          : undefined;
        add(
          record.url,
          typeof hashes?.sha256 === "string" ? hashes.sha256 : null,
          meta ? (typeof metaSha === "string" ? metaSha : null) : undefined,
        );
      }
      Object.values(record).forEach(visit);
    };
    visit(data);
    return files;
  }
  for (const anchor of text.matchAll(/<a\s[^>]*>/gi)) {
    const tag = anchor[0];
    const href = tag.match(/href\s*=\s*"([^"]*)"|href\s*=\s*'([^']*)'/i);
    if (!href) continue;
    const meta = tag.match(/data-(?:core|dist-info)-metadata\s*=\s*"([^"]*)"/i);
    const metaSha = meta ? meta[1]?.match(/sha256=([0-9a-f]{64})/)?.[1] ?? null : undefined;
    add(decodeEntities(href[1] ?? href[2] ?? ""), null, metaSha);
  }
  return files;
}

function decodeEntities(text: string): string {
  return text.replaceAll("&amp;", "&").replaceAll("&#61;", "=").replaceAll("&quot;", '"');
}

function hashInFragment(url: string): string | null {
  return url.match(/#sha256=([0-9a-f]{64})/)?.[1] ?? null;
}

async function download(url: string, accept: string | undefined, signal?: AbortSignal): Promise<Response> {
  const timeout = AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS);
  return await fetch(url, {
    headers: accept ? { accept } : {},
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Writes through a temp file and a rename, so a reader never sees half a file. */
async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeFile(temp, bytes);
  await Deno.rename(temp, path);
}
