/**
 * The Python host: the program that runs inside the sandboxed `deno run` child and drives Pyodide.
 *
 * Security: Python reaches this whole JavaScript realm through `js`, so nothing here is a boundary; the
 * boundary is the child process and its near-empty permissions. This code only keeps the protocol working.
 *
 * @module
 */
import type { FetchedMessage, InitMessage, RunMessage } from "./protocol.ts";

/** Minimal view of the Pyodide API this host uses. */
interface Pyodide {
  runPython(code: string): unknown;
  loadPackage(
    names: string[],
    options: { messageCallback: (m: string) => void; errorCallback: (m: string) => void },
  ): Promise<unknown>;
  setStdout(options: { write: (buffer: Uint8Array) => number }): void;
  setStderr(options: { write: (buffer: Uint8Array) => number }): void;
  setStdin(options: { stdin: () => string | null | undefined }): void;
  setInterruptBuffer(buffer: Int32Array): void;
  makeMemorySnapshot(): Uint8Array;
  toPy(value: unknown): unknown;
}

/** The part of Emscripten's file system API used to mount the workspace. */
interface EmscriptenFS {
  mkdirTree(path: string): void;
  mount(type: unknown, options: { root: string }, mountpoint: string): void;
  filesystems: { NODEFS: { tryFSOperation<T>(operation: () => T): T } };
}

/** The helper module's functions, as Pyodide proxies them to JavaScript. */
interface Helper {
  plan(code: string, packages: unknown, importMap: unknown): { toJs(): unknown };
  check_imports(code: string): string;
  pip_install(requirements: unknown, indexUrls: unknown): Promise<string>;
  run(code: string, limit: number): PyReport | PyCoroutine;
}

/** A Python dict proxy holding a call's report. */
interface PyReport {
  type: string;
  toJs(options: { dict_converter: typeof Object.fromEntries }): Record<string, unknown>;
}

/** A Python coroutine proxy; awaiting it gives a report. */
interface PyCoroutine extends PromiseLike<PyReport> {
  type: "coroutine";
}

/**
 * Body of the host. It runs in the child, serialized with `toString()`, so it may use only globals.
 */
async function host(): Promise<void> {
  const encoder = new TextEncoder();
  const writeAll = (bytes: Uint8Array) => {
    let offset = 0;
    while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
  };
  const send = (message: unknown) => writeAll(encoder.encode(JSON.stringify(message) + "\n"));

  let limit = 65536;
  let out = newCapture(limit);
  let err = newCapture(limit);
  let progress: ((message: string) => void) | null = null;
  const capture = (target: "out" | "err", chunk: Uint8Array) =>
    addToCapture(target === "out" ? out : err, chunk);

  // Console output of this realm (Pyodide's loader, `js.console.log` from Python) must never reach
  // stdout, which carries the protocol: it goes to the call's capture, or to progress while installing.
  const sink = (target: "out" | "err") => (...args: unknown[]) => {
    const line = args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" ");
    if (progress) progress(line);
    else capture(target, encoder.encode(line + "\n"));
  };
  console.log = console.info = console.debug = sink("out");
  console.warn = console.error = sink("err");

  // Incoming messages.
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  const pendingFetches = new Map<number, (reply: FetchedMessage) => void>();
  const runs: RunMessage[] = [];
  const wake: { runner: (() => void) | null; init: (() => void) | null } = { runner: null, init: null };
  let init: InitMessage | null = null;
  (async () => {
    let buffer = "";
    for await (const chunk of lines) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const message = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (message.type === "init") {
          init = message;
          wake.init?.();
        } else if (message.type === "run") {
          runs.push(message);
          wake.runner?.();
        } else if (message.type === "fetched") {
          pendingFetches.get(message.id)?.(message);
          pendingFetches.delete(message.id);
        }
      }
    }
    // The server is gone: so is this process.
    Deno.exit(0);
  })();
  if (!init) await new Promise<void>((resolve) => wake.init = resolve);
  const config = init as unknown as InitMessage;
  limit = config.outputLimitBytes;
  out = newCapture(limit);
  err = newCapture(limit);

  brokerDownloads(send, pendingFetches);

  const started = performance.now();
  const lockText = await Deno.readTextFile(config.lockFilePath);
  const { loadPyodide } = await import(config.pyodideUrl);
  const pyodide: Pyodide = await loadPyodide({
    indexURL: config.indexURL,
    lockFileContents: lockText,
    packageBaseUrl: config.packageBaseUrl,
    // In Deno, Pyodide's loader reads and writes fetched wheels here; it is this process's own directory.
    packageCacheDir: config.workDir,
    stdout: () => {},
    stderr: () => {},
    // Private Pyodide options (the version is pinned): boot from a memory snapshot of a booted
    // interpreter, or make one.
    ...(config.snapshotPath
      ? { _loadSnapshot: await verifiedSnapshot(config.snapshotPath, config.snapshotSha256, send) }
      : {}),
    ...(config.makeSnapshot ? { _makeSnapshot: true } : {}),
  });
  // Pyodide keeps its boot options; the snapshot bytes and the lock text are not needed after boot
  // (the lock is parsed), and holding them costs about 35 MB. Private fields of the pinned version.
  const bootOptions = (pyodide as unknown as { _api?: { config?: Record<string, unknown> } })._api?.config;
  if (bootOptions) {
    bootOptions._loadSnapshot = undefined;
    bootOptions.lockFileContents = undefined;
  }
  if (config.makeSnapshot) {
    // Only a process that never ran user code makes a snapshot, with the helper and its imports loaded.
    // Packages (micropip included) stay out: loading one leaves JS references a snapshot cannot hold.
    pyodide.runPython(config.helper);
    const path = `${config.workDir}/snapshot.bin`;
    Deno.writeFileSync(path, pyodide.makeMemorySnapshot());
    send({ type: "snapshot", path });
    Deno.exit(0);
  }
  pyodide.setStdout({ write: (buffer) => capture("out", buffer) });
  pyodide.setStderr({ write: (buffer) => capture("err", buffer) });
  // Python's stdin is empty: `input()` raises EOFError instead of reading the protocol stream.
  pyodide.setStdin({ stdin: () => null });

  const interrupt = await listenForInterrupts();
  pyodide.setInterruptBuffer(interrupt);

  if (config.workspace) mountWorkspace(pyodide, config.workspace.path);
  // A snapshot already holds the helper; otherwise define it now.
  const helper =
    (config.snapshotPath
      ? pyodide.runPython("import sys\nsys.modules.get('_code_runner_helper')")
      : undefined) as Helper | undefined ?? pyodide.runPython(config.helper) as Helper;
  const lock = JSON.parse(lockText) as {
    packages: Record<string, { name: string; imports?: string[] }>;
  };
  const importMap: Record<string, string> = {};
  for (const entry of Object.values(lock.packages)) {
    for (const name of entry.imports ?? []) importMap[name] = entry.name;
  }
  const pyImportMap = pyodide.toPy(importMap);
  send({ type: "ready", bootMs: Math.round(performance.now() - started) });

  for (;;) {
    if (runs.length === 0) await new Promise<void>((resolve) => wake.runner = resolve);
    const run = runs.shift();
    if (!run) continue;
    out = newCapture(limit);
    err = newCapture(limit);
    const done = (fields: Record<string, unknown>) =>
      send({
        type: "done",
        callId: run.callId,
        stdout: finishCapture(out),
        stderr: finishCapture(err),
        ...fields,
      });
    // Install what the code needs; this phase has its own time limit on the server.
    let announced = false;
    progress = (message) => send({ type: "progress", callId: run.callId, message });
    const { installed, problems } = await installFor(run.code, run.packages, {
      plan: (packages) =>
        helper.plan(run.code, pyodide.toPy(packages), pyImportMap).toJs() as [string[], string[], string[]],
      loadPackages: async (names) => {
        const failures: string[] = [];
        await pyodide.loadPackage(names, {
          messageCallback: (m: string) => progress?.(m),
          errorCallback: (m: string) => failures.push(m),
        });
        return failures;
      },
      pipInstall: async (requirements) =>
        await helper.pip_install(pyodide.toPy(requirements), pyodide.toPy(config.indexUrls)),
      checkImports: () => helper.check_imports(run.code),
      // The server times execution from the start; installing switches it to the install limit.
      installing: () => {
        if (announced) return;
        announced = true;
        send({ type: "installing", callId: run.callId });
      },
      progress: (message) => progress?.(message),
    }).catch((error) => ({
      installed: [] as string[],
      problems: [String((error as Error)?.message ?? error)],
    }));
    if (problems.length) {
      progress = null;
      done({ outcome: "install_error", error: problems.join("\n"), installed });
      continue;
    }
    progress = null;
    // Only the execution counts against the call's time limit.
    Atomics.store(interrupt, 0, 0);
    if (announced) send({ type: "executing", callId: run.callId });
    try {
      const ran = helper.run(run.code, limit);
      const report = ran.type === "coroutine" ? await (ran as PyCoroutine) : ran as PyReport;
      const result = report.toJs({ dict_converter: Object.fromEntries });
      Atomics.store(interrupt, 0, 0);
      done({ ...result, installed });
    } catch (error) {
      // An exception escaping the helper means the interpreter itself broke (e.g. os._exit).
      send({ type: "fatal", error: String((error as Error)?.message ?? error) });
      Deno.exit(70);
    }
  }
}

/** Output of the current call, capped, counting what was dropped. */
interface Capture {
  bytes: Uint8Array;
  length: number;
  total: number;
  limit: number;
}

function newCapture(limit: number): Capture {
  return { bytes: new Uint8Array(limit), length: 0, total: 0, limit };
}

function addToCapture(c: Capture, chunk: Uint8Array): number {
  c.total += chunk.length;
  const take = Math.min(chunk.length, c.limit - c.length);
  if (take > 0) {
    c.bytes.set(chunk.subarray(0, take), c.length);
    c.length += take;
  }
  return chunk.length;
}

/** The captured text, never cutting a UTF-8 character in half, with a marker when bytes were dropped. */
function finishCapture(c: Capture): { text: string; truncated: boolean; totalBytes: number } {
  let end = c.length;
  if (c.total > c.length) {
    let start = end;
    while (start > 0 && end - start < 4 && ((c.bytes[start - 1] as number) & 0xc0) === 0x80) start--;
    if (start > 0) {
      const lead = c.bytes[start - 1] as number;
      const width = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
      if (end - (start - 1) < width) end = start - 1;
    }
  }
  let text = new TextDecoder().decode(c.bytes.subarray(0, end));
  if (c.total > end) {
    text += `\n[… output truncated: ${c.total - end} more bytes not shown (limit ${c.limit} bytes)]`;
  }
  return { text, truncated: c.total > end, totalBytes: c.total };
}

/**
 * Package downloads go through the server, which fetches only from the configured sources and keeps a
 * verified copy in a cache this process may read but not write.
 */
function brokerDownloads(
  send: (message: unknown) => void,
  pendingFetches: Map<number, (reply: FetchedMessage) => void>,
): void {
  const realFetch = globalThis.fetch;
  let nextFetchId = 1;
  globalThis.fetch = async (input: string | URL | Request, options?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (!/^https?:/i.test(url)) return realFetch(input, options);
    const id = nextFetchId++;
    const accept = new Headers(options?.headers ?? (input instanceof Request ? input.headers : undefined))
      .get("accept") ?? undefined;
    const reply = await new Promise<FetchedMessage>((resolve) => {
      pendingFetches.set(id, resolve);
      send({ type: "fetch", id, url, accept });
    });
    if (reply.passthrough) return realFetch(input, options);
    if (reply.error || !reply.path) throw new TypeError(reply.error ?? `could not fetch ${url}`);
    return new Response(await Deno.readFile(reply.path), {
      status: reply.status ?? 200,
      headers: { "content-type": reply.contentType ?? "application/octet-stream" },
    });
  };
}

/**
 * The snapshot, checked here where it is read anyway against the hash the server recorded. (This file runs
 * serialized in the sandbox and cannot import src/sha256.ts.)
 */
async function verifiedSnapshot(
  path: string,
  sha256: string | undefined,
  send: (message: unknown) => void,
): Promise<Uint8Array> {
  const bytes = await Deno.readFile(path);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (hex !== sha256) {
    send({ type: "fatal", error: `snapshot ${path} does not match its sha256; not using it` });
    Deno.exit(75);
  }
  return bytes;
}

/** A worker thread turns SIGUSR1 from the server into a KeyboardInterrupt, even while Python is busy. */
async function listenForInterrupts(): Promise<Int32Array> {
  const interrupt = new Int32Array(new SharedArrayBuffer(4));
  if (Deno.build.os === "windows") return interrupt;
  function interruptWorker() {
    globalThis.addEventListener("message", (event) => {
      const flag = new Int32Array((event as MessageEvent<SharedArrayBuffer>).data);
      Deno.addSignalListener("SIGUSR1", () => Atomics.store(flag, 0, 2));
      (globalThis as unknown as { postMessage(message: string): void }).postMessage("listening");
    });
  }
  const worker = new Worker(
    `data:application/javascript,${encodeURIComponent(`(${interruptWorker.toString()})()`)}`,
    { type: "module" },
  );
  // Until the worker listens, SIGUSR1 would kill the process (its default action): wait for it.
  const listening = new Promise((resolve) => worker.onmessage = resolve);
  worker.postMessage(interrupt.buffer);
  await listening;
  return interrupt;
}

/** The operator's shared directory at /workspace; Deno's permissions decide what Python may do in it. */
function mountWorkspace(pyodide: Pyodide, path: string): void {
  const fs = (pyodide as unknown as { FS: EmscriptenFS }).FS;
  // Emscripten turns a Node-style error (one with a `code`) into an OSError for Python, and lets any other
  // error break the interpreter. Deno's permission errors have no code: give them EACCES (EIO for the rest),
  // so writing to a read-only workspace raises PermissionError instead of killing the session.
  const nodefs = fs.filesystems.NODEFS;
  const tryOperation = nodefs.tryFSOperation.bind(nodefs);
  nodefs.tryFSOperation = <T>(operation: () => T): T =>
    tryOperation(() => {
      try {
        return operation();
      } catch (error) {
        if (error instanceof Error && !(error as Error & { code?: string }).code) {
          (error as Error & { code?: string }).code = error instanceof Deno.errors.NotCapable ||
              /requires .*(access|permission)/i.test(error.message)
            ? "EACCES"
            : "EIO";
        }
        throw error;
      }
    });
  fs.mkdirTree("/workspace");
  fs.mount(nodefs, { root: path }, "/workspace");
}

/** What {@linkcode installFor} installs with: Pyodide's loader, micropip and the helper's planner. */
export interface Installer {
  /** Distribution packages, declared requirements (packages, PEP 723), and PyPI guesses for other imports. */
  plan(packages: string[]): [distribution: string[], declared: string[], guessed: string[]];
  /** Loads distribution packages (micropip too); answers the loader's error messages. */
  loadPackages(names: string[]): Promise<string[]>;
  /** Installs requirements with micropip; answers the failure, or "" on success. */
  pipInstall(requirements: string[]): Promise<string>;
  /** Imports of the code still missing after installing, as a message, or "". */
  checkImports(): string;
  /** Announces the install phase (once a call). */
  installing(): void;
  progress(message: string): void;
}

/**
 * Installs what a call needs: first what it names (packages, PEP 723) and the distribution packages its
 * imports need; then, by import name, whatever import is still missing.
 */
export async function installFor(
  code: string,
  packages: string[],
  installer: Installer,
): Promise<{ installed: string[]; problems: string[] }> {
  let installed: string[] = [];
  const problems: string[] = [];
  const load = async (names: string[], record = true) => {
    installer.installing();
    const failures = await installer.loadPackages(names);
    problems.push(...failures);
    if (!failures.length && record) installed = installed.concat(names);
    return !failures.length;
  };
  const pip = async (requirements: string[]) => {
    installer.installing();
    installer.progress(`Installing ${requirements.join(", ")}`);
    // micropip is the tool, not something the call asked for.
    if (!await load(["micropip"], false)) return;
    const failure = await installer.pipInstall(requirements);
    if (failure) problems.push(failure);
    else installed = installed.concat(requirements);
  };
  // Code without an import statement and no packages needs no planning (the common, fast case).
  if (!packages.length && !/\bimport\b|^# \/\/\/ script/m.test(code)) return { installed, problems };
  const [distribution, declared, firstGuess] = installer.plan(packages);
  if (distribution.length) await load(distribution);
  if (declared.length) await pip(declared);
  if (!problems.length) {
    // What was installed may have provided some imports; plan again only then.
    const [moreDistribution, , guessed] = installed.length ? installer.plan([]) : [[], [], firstGuess];
    if (moreDistribution.length) await load(moreDistribution);
    if (guessed.length) await pip(guessed);
  }
  if (installed.length || problems.length) {
    const missing = installer.checkImports();
    if (missing) problems.push(missing);
  }
  return { installed, problems };
}

/** Everything the host runs, in the order it is defined. */
const HOST_PARTS = [
  newCapture,
  addToCapture,
  finishCapture,
  brokerDownloads,
  verifiedSnapshot,
  listenForInterrupts,
  mountWorkspace,
  installFor,
  host,
];

/** The host as a `data:` URL, ready to be the main module of `deno run`. */
export const HOST_URL = `data:application/javascript,${
  encodeURIComponent(`${HOST_PARTS.map((part) => part.toString()).join("\n")}\nhost();`)
}`;
