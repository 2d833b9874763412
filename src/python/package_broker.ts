/**
 * Downloads Python packages for the sandboxed host, on the server side, from the configured sources only,
 * into an on-disk cache the host may read but never write.
 *
 * Security: the host asks for URLs; this decides. A package file is fetched only when a source the server
 * trusts gave its sha256 — the distribution's lock file, or an index page the server fetched itself — and
 * it enters the cache only under that hash, after the bytes were checked against it. A hash the requester
 * supplies (a `#sha256=` fragment) counts for nothing, a non-2xx answer is never stored, and a cached file
 * is checked again before it is served, so neither a requester nor a damaged file can make the cache serve
 * anything but what its source published.
 *
 * Cache layout (shared safely by several server processes: every file appears by an atomic rename of a
 * complete, checked temp file in the same directory):
 * - `files/<sha256>`: package files, named by their content's hash.
 * - `pages/<sha256>.body`: index page bodies, named by their content's hash; `pages/page-<key>.json` says
 *   which body answers which page (`key` = hash of the URL without query and the Accept variant).
 * - `dist/`: the same for the distribution's lock file, which hosts read at every start: never evicted.
 * - `snapshots/`: not this module's (see snapshot.ts).
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { DEFAULTS } from "../config.ts";
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

/** What the broker may use. */
export interface PackageCacheLimits {
  /** Largest package file downloaded, in bytes (index pages: at most 32 MiB). */
  maxFileBytes: number;
  /** Size the cache is kept under, in bytes; least recently used files are evicted first. */
  maxCacheBytes: number;
  /** Downloads one {@linkcode BrokerSession} may have in progress at once; more wait their turn. */
  downloadsPerSession: number;
}

const MIB = 1024 * 1024;

/** The limits used when {@linkcode PackageBrokerOptions.limits} names none. */
export const DEFAULT_PACKAGE_CACHE_LIMITS: Readonly<PackageCacheLimits> = {
  maxFileBytes: DEFAULTS.packageMaxFileMb * MIB,
  maxCacheBytes: DEFAULTS.packageCacheMaxMb * MIB,
  downloadsPerSession: 4,
};

/** Names of package files (wheels, Pyodide's zipped shared libraries, sdists, core metadata). */
const PACKAGE_FILE = /\.(whl|zip|tar|tar\.gz|tgz|metadata)$/;
/** The one file of the distribution that is not a package: its lock file. */
const LOCK_FILE = "pyodide-lock.json";

/** How long an index page is used from the cache before it is asked for again. */
const INDEX_FRESH_MS = 10 * 60 * 1000;
/** How long one download may take. */
const DOWNLOAD_TIMEOUT_MS = 120_000;
/** A source that has not answered (status and headers) by then counts as unreachable. */
const ANSWER_TIMEOUT_MS = 30_000;
/** After Pyodide's distribution could not be reached, its files fail at once for this long (cached ones serve). */
const UNREACHABLE_MS = 5 * 60 * 1000;
/** Largest index page read (the page is parsed in memory to learn its files' hashes). */
const MAX_PAGE_BYTES = 32 * MIB;
/** Files served or stored this recently are not evicted: a host may be about to read them. */
const IN_USE_MS = 60_000;
/** A temp file this old was left by a process that died mid-download. */
const STALE_TEMP_MS = 2 * DOWNLOAD_TIMEOUT_MS;
/** Requests one session may have waiting for a download slot; beyond that they fail. */
const MAX_QUEUED_PER_SESSION = 256;
/** Package URLs remembered with their hashes, and hashes remembered per URL (bounds server memory). */
const MAX_KNOWN_URLS = 100_000;
const MAX_HASHES_PER_URL = 8;

/** What the server sends as Accept for an index page; the requester only picks the variant. */
const ACCEPT = {
  json: "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1, " +
    "*/*;q=0.01",
  html: "application/vnd.pypi.simple.v1+html, text/html;q=0.9, */*;q=0.1",
} as const;
type Variant = keyof typeof ACCEPT;

/** sha256 of nothing: the body handed out for answers that are not stored. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Options of {@linkcode PackageBroker}. */
export interface PackageBrokerOptions {
  cacheDir: string;
  sources: PackageSources;
  /** sha256 of each file of the Pyodide distribution, by file name, from its lock file (read when first needed). */
  distributionHashes: () => Promise<ReadonlyMap<string, string>>;
  /** Defaults to {@linkcode DEFAULT_PACKAGE_CACHE_LIMITS}. */
  limits?: Partial<PackageCacheLimits>;
}

/** Options of one fetch. */
export interface BrokerFetchOptions {
  /** The requester's Accept header; it only chooses between the JSON and HTML forms of an index page. */
  accept?: string;
  /** Ends this caller's wait; a download other callers wait for goes on. */
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

/** What an index page's cache entry records. */
interface PageMeta {
  url: string;
  variant: Variant;
  status: number;
  contentType: string;
  sha256: string;
  fetchedAt: number;
}

/** A download shared by every caller that wants the same thing while it runs. */
interface SharedDownload<T> {
  promise: Promise<T>;
  controller: AbortController;
  waiters: number;
}

/**
 * Serves package downloads from a verified cache, fetching what is missing.
 *
 * @example
 * ```ts
 * async function example(options: ConstructorParameters<typeof PackageBroker>[0]) {
 *   const broker = new PackageBroker(options);
 *   const session = broker.session(); // one per Python host: its own download cap
 *   const { path } = await session.fetch("https://pypi.org/simple/attrs/", { accept: "text/html" });
 *   session.close();
 *   return path;
 * }
 * ```
 */
export class PackageBroker {
  readonly limits: Readonly<PackageCacheLimits>;
  /** Package URLs listed by pages the server fetched, with the sha256s listed (empty: listed without). */
  #known = new Map<string, Set<string>>();
  #downloads = new Map<string, SharedDownload<unknown>>();
  /** Cached files checked against their hash, with the stat fingerprint they had then. */
  #verified = new Map<string, string>();
  #evicting: Promise<void> = Promise.resolve();
  /** Why Pyodide's distribution could not be reached, and until when that is believed. */
  #distributionDown: { until: number; reason: string } | null = null;

  constructor(readonly options: PackageBrokerOptions) {
    const limits = { ...DEFAULT_PACKAGE_CACHE_LIMITS, ...options.limits };
    this.limits = { ...limits, maxFileBytes: Math.min(limits.maxFileBytes, limits.maxCacheBytes) };
  }

  /** The directory the host must be able to read. */
  get cacheDir(): string {
    return this.options.cacheDir;
  }

  /**
   * A handle for one Python host: at most {@linkcode PackageCacheLimits.downloadsPerSession} of its requests
   * run at once, and closing it (or aborting `signal`) ends its waits without failing anyone else's.
   */
  session(options: { signal?: AbortSignal } = {}): BrokerSession {
    return new BrokerSession(this, options);
  }

  /** Fetches `url` for the host, or throws {@linkcode NotAPackageUrl} / an error saying what failed. */
  async fetch(url: string, options: BrokerFetchOptions = {}): Promise<BrokeredResponse> {
    options.signal?.throwIfAborted();
    const parsed = URL.canParse(url) ? new URL(url) : null;
    if (!parsed || (parsed.protocol !== "https:" && parsed.protocol !== "http:")) {
      throw new NotAPackageUrl(`not an http(s) URL: ${url}`);
    }
    const { pyodideBaseUrl, indexUrls } = this.options.sources;
    // Security: compare the normalized URL without query or fragment, so `…/simple/../elsewhere` cannot
    // pass as under a source, and nothing the requester appends makes a new cache entry.
    const bare = `${parsed.origin}${parsed.pathname}`;
    const isPackageFile = PACKAGE_FILE.test(parsed.pathname);
    if (bare.startsWith(pyodideBaseUrl) && bare.length > pyodideBaseUrl.length) {
      const name = decodeURIComponent(bare.slice(pyodideBaseUrl.length));
      if (name === LOCK_FILE) return await this.#page(bare, "dist", options);
      if (!isPackageFile) throw new NotAPackageUrl(`not a package of the distribution: ${url}`);
      const sha256 = (await this.options.distributionHashes()).get(name);
      if (!sha256) throw new Error(`${name} is not in the distribution's lock file`);
      return await this.#file(bare, new Set([sha256]), options, true);
    }
    parsed.hash = "";
    const listed = this.#known.get(parsed.href);
    if (listed) {
      if (!listed.size) {
        throw new Error(`${parsed.href} is listed without a sha256 by its index, so it cannot be verified`);
      }
      return await this.#file(parsed.href, listed, options);
    }
    if (indexUrls.some((index) => bare.startsWith(index.endsWith("/") ? index : `${index}/`))) {
      if (!isPackageFile) return await this.#page(bare, "pages", options);
      // Security: a package file is fetched only when an index page the server read listed it with a hash;
      // a `#sha256=` on the request is the requester's word, not the index's.
      throw new Error(
        `${bare} is not listed by an index page the server fetched; ask for the project's page first`,
      );
    }
    throw new NotAPackageUrl(`not from a configured package source: ${url}`);
  }

  /**
   * Whether Pyodide's distribution answered lately: `null` when it did (or was not asked), else why not. While
   * it is unreachable, micropip and pure-Python packages come from the package indexes.
   */
  get distributionUnreachable(): string | null {
    const down = this.#distributionDown;
    return down && Date.now() < down.until ? down.reason : null;
  }

  /** A package file, served from `files/<sha256>` once a download matched one of `hashes`. */
  async #file(
    url: string,
    hashes: ReadonlySet<string>,
    options: BrokerFetchOptions,
    fromDistribution = false,
  ): Promise<BrokeredResponse> {
    const contentType = "application/octet-stream";
    for (const sha256 of hashes) {
      const path = this.#filePath(sha256);
      if (await this.#check(path, sha256)) return { path, status: 200, contentType };
    }
    // A distribution that did not answer is not asked again for a while: each try could take a long time.
    const unreachable = fromDistribution ? this.distributionUnreachable : null;
    if (unreachable) throw new Error(unreachable);
    const name = basename(new URL(url).pathname);
    options.onProgress?.(`Downloading ${name}`);
    const { path, size } = await this.#shared(
      `file ${url}`,
      options.signal,
      (signal) => this.#downloadFile(url, name, hashes, signal, fromDistribution),
    );
    options.onProgress?.(`Downloaded ${name} (${Math.round(size / 1024)} KiB)`);
    return { path, status: 200, contentType };
  }

  async #downloadFile(
    url: string,
    name: string,
    hashes: ReadonlySet<string>,
    signal: AbortSignal,
    fromDistribution: boolean,
  ): Promise<{ path: string; size: number }> {
    let response: Response;
    try {
      response = await answer(url, {}, signal);
    } catch (error) {
      if (fromDistribution && !signal.aborted) {
        const base = this.options.sources.pyodideBaseUrl;
        this.#distributionDown = {
          until: Date.now() + UNREACHABLE_MS,
          reason:
            `Pyodide's distribution at ${base} cannot be reached (${
              (error as Error).message
            }). Packages built for Pyodide (numpy, pandas, …) come only from there: set ` +
            "CODE_RUNNER_PYODIDE_PACKAGES_URL to a reachable mirror of it (a copy of its full/ directory); " +
            "pure-Python packages still install from the package indexes.",
        };
        throw new Error(this.#distributionDown.reason);
      }
      throw error;
    }
    if (fromDistribution) this.#distributionDown = null;
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`${url} answered HTTP ${response.status}`);
    }
    const received = await this.#receive(response, join(this.cacheDir, "files"), this.limits.maxFileBytes);
    // Security: only bytes that match a hash from a trusted source get a name in the cache.
    if (!hashes.has(received.sha256)) {
      await Deno.remove(received.temp).catch(() => {});
      throw new Error(
        `${name} from ${url} has sha256 ${received.sha256}, but its source lists ${
          [...hashes].join(" or ")
        }; not using it`,
      );
    }
    const path = this.#filePath(received.sha256);
    await this.#adopt(received.temp, path);
    return { path, size: received.size };
  }

  /** An index page: fresh copies for a while, the network after that, a stale copy when that fails. */
  async #page(url: string, dir: "pages" | "dist", options: BrokerFetchOptions): Promise<BrokeredResponse> {
    const variant: Variant = /json/i.test(options.accept ?? "") ? "json" : "html";
    const metaPath = join(this.cacheDir, dir, `page-${await sha256Hex(`${url}\n${variant}`)}.json`);
    const cached = await this.#cachedPage(metaPath, dir);
    if (cached && Date.now() - cached.meta.fetchedAt < INDEX_FRESH_MS) {
      return await this.#servePage(url, cached.meta, cached.path);
    }
    let fetched: { meta: PageMeta; path: string };
    try {
      fetched = await this.#shared(
        `page ${metaPath}`,
        options.signal,
        (signal) => this.#downloadPage(url, variant, { dir, metaPath, signal }),
      );
    } catch (error) {
      if (!cached || options.signal?.aborted) throw error;
      return await this.#servePage(url, cached.meta, cached.path);
    }
    // A server error while a good copy is at hand: the copy serves.
    if (fetched.meta.status >= 500 && cached) return await this.#servePage(url, cached.meta, cached.path);
    return await this.#servePage(url, fetched.meta, fetched.path);
  }

  async #downloadPage(
    url: string,
    variant: Variant,
    { dir, metaPath, signal }: { dir: "pages" | "dist"; metaPath: string; signal: AbortSignal },
  ): Promise<{ meta: PageMeta; path: string }> {
    const response = await answer(url, { headers: { accept: ACCEPT[variant] } }, signal);
    const contentType = response.headers.get("content-type") ?? "application/octet-stream";
    if (!response.ok) {
      // Security: an error answer is never stored; the requester gets its status and an empty body.
      await response.body?.cancel();
      const meta = { url, variant, status: response.status, contentType, sha256: EMPTY_SHA256, fetchedAt: 0 };
      return { meta, path: await this.#emptyBody(dir) };
    }
    const received = await this.#receive(
      response,
      join(this.cacheDir, dir),
      Math.min(MAX_PAGE_BYTES, this.limits.maxFileBytes),
    );
    const path = join(this.cacheDir, dir, `${received.sha256}.body`);
    await this.#adopt(received.temp, path);
    const meta: PageMeta = {
      url,
      variant,
      status: response.status,
      contentType,
      sha256: received.sha256,
      fetchedAt: Date.now(),
    };
    await writeAtomically(metaPath, new TextEncoder().encode(JSON.stringify(meta)));
    return { meta, path };
  }

  /** A page's cache entry, if its meta parses and its body is there and checks out. */
  async #cachedPage(metaPath: string, dir: string): Promise<{ meta: PageMeta; path: string } | null> {
    const meta = await Deno.readTextFile(metaPath).then(parsePageMeta, () => null);
    if (!meta) return null;
    const path = join(this.cacheDir, dir, `${meta.sha256}.body`);
    return await this.#check(path, meta.sha256) ? { meta, path } : null;
  }

  async #servePage(url: string, meta: PageMeta, path: string): Promise<BrokeredResponse> {
    if (meta.status >= 200 && meta.status < 300) await this.#learn(url, meta.contentType, path);
    return { path, status: meta.status, contentType: meta.contentType };
  }

  /** The empty body handed out with answers that are not stored. */
  async #emptyBody(dir: string): Promise<string> {
    const path = join(this.cacheDir, dir, `${EMPTY_SHA256}.body`);
    if (!await this.#check(path, EMPTY_SHA256)) await writeAtomically(path, new Uint8Array());
    return path;
  }

  /** Remembers the package files an index page lists, with their hashes, so they may be fetched. */
  async #learn(pageUrl: string, contentType: string, path: string): Promise<void> {
    const text = await Deno.readTextFile(path).catch(() => "");
    for (const [url, sha256] of listedFiles(pageUrl, contentType, text)) {
      if (!URL.canParse(url) || !PACKAGE_FILE.test(new URL(url).pathname)) continue;
      const hashes = this.#known.get(url) ?? new Set<string>();
      // Most recently listed last, so the oldest go first when the map is full.
      this.#known.delete(url);
      this.#known.set(url, hashes);
      if (sha256) {
        hashes.delete(sha256);
        hashes.add(sha256);
        if (hashes.size > MAX_HASHES_PER_URL) hashes.delete(hashes.values().next().value as string);
      }
    }
    while (this.#known.size > MAX_KNOWN_URLS) this.#known.delete(this.#known.keys().next().value as string);
  }

  #filePath(sha256: string): string {
    return join(this.cacheDir, "files", sha256);
  }

  /**
   * Whether the cached file at `path` holds exactly what `sha256` names; a file that does not is left to be
   * replaced (by the next download's rename) and is not served. Marks a good file as just used.
   */
  async #check(path: string, sha256: string): Promise<boolean> {
    const before = await Deno.stat(path).catch(() => null);
    if (!before?.isFile) return false;
    if (this.#verified.get(path) !== fingerprint(before)) {
      // Security: the cache is shared with other processes and survives upgrades; check before serving.
      if (await hashFile(path).catch(() => null) !== sha256) {
        this.#verified.delete(path);
        return false;
      }
    }
    // Least recently used goes first when the cache is full: note this use.
    await Deno.utime(path, new Date(), before.mtime ?? new Date()).catch(() => {});
    const after = await Deno.stat(path).catch(() => null);
    if (after && after.ino === before.ino && after.size === before.size) {
      this.#verified.set(path, fingerprint(after));
    }
    return true;
  }

  /** Streams a response body into a temp file in `dir`, hashing it, up to `limit` bytes. */
  async #receive(
    response: Response,
    dir: string,
    limit: number,
  ): Promise<{ temp: string; sha256: string; size: number }> {
    const tooLarge = () =>
      new Error(
        `${response.url} is larger than the limit of ${Math.round(limit / MIB)} MiB ` +
          `(CODE_RUNNER_PACKAGE_MAX_FILE_MB)`,
      );
    const declared = Number(response.headers.get("content-length") ?? NaN);
    if (declared > limit) {
      await response.body?.cancel();
      throw tooLarge();
    }
    await Deno.mkdir(dir, { recursive: true });
    const temp = join(dir, `.${crypto.randomUUID()}.tmp`);
    const file = await Deno.open(temp, { write: true, createNew: true });
    const hash = (await nodeCrypto()).createHash("sha256");
    let size = 0;
    try {
      for await (const chunk of response.body ?? new ReadableStream<Uint8Array>()) {
        size += chunk.length;
        // Security: a body without end must not fill the disk; it is cut at the limit.
        if (size > limit) throw tooLarge();
        hash.update(chunk);
        for (let written = 0; written < chunk.length;) written += await file.write(chunk.subarray(written));
      }
    } catch (error) {
      file.close();
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
    file.close();
    return { temp, sha256: hash.digest("hex"), size };
  }

  /** Moves a checked temp file to its name, then keeps the cache under its size. */
  async #adopt(temp: string, path: string): Promise<void> {
    try {
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
    const info = await Deno.stat(path).catch(() => null);
    if (info) this.#verified.set(path, fingerprint(info));
    await this.#evict();
  }

  /** Evicts least recently used files until the cache fits its size (one scan at a time). */
  #evict(): Promise<void> {
    this.#evicting = this.#evicting.then(() => this.#evictOnce()).catch(() => {});
    return this.#evicting;
  }

  async #evictOnce(): Promise<void> {
    const now = Date.now();
    const entries: Array<{ path: string; size: number; used: number }> = [];
    let total = 0;
    // `index/` is the layout of earlier versions: never served, evicted like the rest.
    for (const dir of ["files", "pages", "index"]) {
      const names = await Array.fromAsync(Deno.readDir(join(this.cacheDir, dir))).catch(() => []);
      for (const entry of names) {
        if (!entry.isFile) continue;
        const path = join(this.cacheDir, dir, entry.name);
        const info = await Deno.stat(path).catch(() => null);
        if (!info) continue;
        const modified = info.mtime?.getTime() ?? now;
        if (entry.name.endsWith(".tmp")) {
          if (now - modified > STALE_TEMP_MS) await Deno.remove(path).catch(() => {});
          else total += info.size;
          continue;
        }
        entries.push({ path, size: info.size, used: Math.max(info.atime?.getTime() ?? 0, modified) });
        total += info.size;
      }
    }
    if (total <= this.limits.maxCacheBytes) return;
    entries.sort((a, b) => a.used - b.used);
    for (const entry of entries) {
      if (total <= this.limits.maxCacheBytes || now - entry.used < IN_USE_MS) break;
      await Deno.remove(entry.path).catch(() => {});
      this.#verified.delete(entry.path);
      total -= entry.size;
    }
  }

  /**
   * Runs `start` once for all callers asking for `key` while it runs. Each caller's `signal` ends only
   * its own wait; the download is aborted when nobody waits for it any more, or after its time limit.
   */
  async #shared<T>(
    key: string,
    signal: AbortSignal | undefined,
    start: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    signal?.throwIfAborted();
    let entry = this.#downloads.get(key) as SharedDownload<T> | undefined;
    if (!entry) {
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new Error(`the download took longer than ${DOWNLOAD_TIMEOUT_MS / 1000} s`)),
        DOWNLOAD_TIMEOUT_MS,
      );
      const created: SharedDownload<T> = {
        controller,
        waiters: 0,
        promise: start(controller.signal).finally(() => {
          clearTimeout(timer);
          if (this.#downloads.get(key) === created) this.#downloads.delete(key);
        }),
      };
      created.promise.catch(() => {});
      this.#downloads.set(key, created);
      entry = created;
    }
    const shared = entry;
    shared.waiters++;
    try {
      return await untilAborted(shared.promise, signal);
    } finally {
      if (--shared.waiters === 0 && this.#downloads.get(key) === shared) {
        this.#downloads.delete(key);
        shared.controller.abort(new Error("nobody waits for this download any more"));
      }
    }
  }
}

/**
 * One Python host's use of the broker: its downloads run at most
 * {@linkcode PackageCacheLimits.downloadsPerSession} at a time, and {@linkcode close} ends its waits (the
 * host is gone) without failing other sessions that wait for the same download.
 */
export class BrokerSession {
  #controller = new AbortController();
  #running = 0;
  #queue: Array<{ resolve: () => void; reject: (reason: unknown) => void }> = [];

  constructor(readonly broker: PackageBroker, options: { signal?: AbortSignal } = {}) {
    const { signal } = options;
    if (signal?.aborted) this.close(signal.reason);
    else signal?.addEventListener("abort", () => this.close(signal.reason), { once: true });
  }

  /** Like {@linkcode PackageBroker.fetch}, within this session's download cap. */
  async fetch(
    url: string,
    options: Omit<BrokerFetchOptions, "signal"> = {},
  ): Promise<BrokeredResponse> {
    const signal = this.#controller.signal;
    signal.throwIfAborted();
    if (this.#running >= this.broker.limits.downloadsPerSession) {
      // Security: a host that asks for thousands of URLs at once gets a queue, then errors, not thousands of
      // downloads.
      if (this.#queue.length >= MAX_QUEUED_PER_SESSION) {
        throw new Error(`too many package downloads at once (${MAX_QUEUED_PER_SESSION} waiting)`);
      }
      await new Promise<void>((resolve, reject) => this.#queue.push({ resolve, reject }));
    } else {
      this.#running++;
    }
    try {
      return await this.broker.fetch(url, { ...options, signal });
    } finally {
      // The slot passes to the next in line, or is given back.
      const next = this.#queue.shift();
      if (next) next.resolve();
      else this.#running--;
    }
  }

  /** Ends this session's waits (running and queued); downloads others wait for go on. */
  close(reason: unknown = new Error("the Python process exited")): void {
    if (this.#controller.signal.aborted) return;
    this.#controller.abort(reason);
    for (const waiter of this.#queue.splice(0)) waiter.reject(reason);
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
    files.set(url.href, hash && /^[0-9a-f]{64}$/.test(hash) ? hash : null);
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
          typeof hashes?.sha256 === "string" ? hashes.sha256.toLowerCase() : null,
          meta ? (typeof metaSha === "string" ? metaSha.toLowerCase() : null) : undefined,
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

function parsePageMeta(text: string): PageMeta | null {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return null;
  }
  if (!data || typeof data !== "object") return null;
  const meta = data as Record<string, unknown>;
  const ok = typeof meta.url === "string" && (meta.variant === "json" || meta.variant === "html") &&
    typeof meta.status === "number" && typeof meta.contentType === "string" &&
    typeof meta.sha256 === "string" && /^[0-9a-f]{64}$/.test(meta.sha256) &&
    typeof meta.fetchedAt === "number";
  return ok ? meta as unknown as PageMeta : null;
}

/**
 * `fetch`, failing when the answer (status and headers) takes longer than {@linkcode ANSWER_TIMEOUT_MS}: a
 * firewall that drops packets would otherwise hold every install until the download's own time limit.
 */
async function answer(url: string, init: RequestInit, signal: AbortSignal): Promise<Response> {
  const controller = new AbortController();
  const abort = () => controller.abort(signal.reason);
  signal.addEventListener("abort", abort, { once: true });
  const timer = setTimeout(
    () => controller.abort(new Error(`no answer within ${ANSWER_TIMEOUT_MS / 1000} s`)),
    ANSWER_TIMEOUT_MS,
  );
  try {
    return await fetch(url, { ...init, signal: controller.signal });
  } catch (error) {
    signal.removeEventListener("abort", abort);
    throw controller.signal.aborted && !signal.aborted ? controller.signal.reason : error;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves or rejects with `promise`, or rejects with `signal`'s reason when it aborts first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Identifies one version of a file: a rewrite or replacement changes at least one of these. */
function fingerprint(info: Deno.FileInfo): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtime?.getTime()}:${info.ctime?.getTime()}`;
}

/** Streaming hashes; loaded on first use, since loading `node:crypto` costs the server's start-up 15 ms. */
const nodeCrypto = () => import("node:crypto");

/** sha256 of a file as hex, read in chunks. */
async function hashFile(path: string): Promise<string> {
  const hash = (await nodeCrypto()).createHash("sha256");
  const file = await Deno.open(path);
  try {
    const buffer = new Uint8Array(256 * 1024);
    for (let read; (read = await file.read(buffer)) !== null;) hash.update(buffer.subarray(0, read));
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/** Writes through a temp file and a rename in the same directory, so a reader never sees half a file. */
async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const temp = join(dir, `.${crypto.randomUUID()}.tmp`);
  await Deno.writeFile(temp, bytes);
  await Deno.rename(temp, path);
}
