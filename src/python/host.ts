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
  /** Packages the loader has loaded, by name. */
  loadedPackages: Record<string, string>;
}

/** The part of Emscripten's file system API used to mount the workspace. */
interface EmscriptenFS {
  mkdirTree(path: string): void;
  mount(type: unknown, options: { root: string }, mountpoint: string): void;
  filesystems: { NODEFS: { tryFSOperation<T>(operation: () => T): T } };
}

/** The helper module's functions, as Pyodide proxies them to JavaScript. */
interface Helper {
  plan(code: string, packages: unknown, importMap: unknown): PyList;
  micropip_ready(): boolean;
  configure_micropip(
    indexUrls: unknown,
    indexFirst: boolean,
    installing: (active: boolean, message: string) => void,
  ): void;
  micropip_from_index(indexUrls: unknown, preferredVersion: string): Promise<string>;
  pip_install(requirements: unknown, indexFirst: boolean): Promise<string>;
  missing_imports(code: string): PyList;
  run(code: string, limit: number): PyReport | PyCoroutine;
}

/** A Python object proxy the host converts once and lets go. */
interface PyList {
  toJs(options?: { dict_converter: typeof Object.fromEntries }): unknown;
  destroy(): void;
}

/** A Python dict proxy holding a call's report. */
interface PyReport {
  type: string;
  toJs(options: { dict_converter: typeof Object.fromEntries }): Record<string, unknown>;
}

/** The part of the lock file the host reads. */
interface LockIndex {
  packages: Record<string, { name: string; version?: string; imports?: string[] }>;
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
  /** What was reported as errors while installing (micropip does not notice the loader's failures). */
  let loaderErrors: string[] = [];
  /** While installing, what the loader and micropip print is progress, not the code's output. */
  const installLog = (target: "out" | "err", text: string) => {
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      progress?.(line);
      if (target === "err") loaderErrors.push(line);
    }
  };
  const decoder = new TextDecoder();
  const capture = (target: "out" | "err", chunk: Uint8Array) => {
    if (!progress) return addToCapture(target === "out" ? out : err, chunk);
    installLog(target, decoder.decode(chunk));
    return chunk.length;
  };

  // Console output of this realm (Pyodide's loader, `js.console.log` from Python) must never reach
  // stdout, which carries the protocol: it goes to the call's capture, or to progress while installing.
  const sink = (target: "out" | "err") => (...args: unknown[]) => {
    const line = args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" ");
    if (progress) installLog(target, line);
    else capture(target, encoder.encode(line + "\n"));
  };
  console.log = console.info = console.debug = sink("out");
  console.warn = console.error = sink("err");

  // Incoming messages.
  // `read()`, not `stdin.readable`: web streams cost milliseconds to set up, before the first message.
  const lines = (async function* () {
    const textDecoder = new TextDecoder();
    const buffer = new Uint8Array(64 * 1024);
    for (let read; (read = await Deno.stdin.read(buffer)) !== null;) {
      yield textDecoder.decode(buffer.subarray(0, read), { stream: true });
    }
  })();
  const pendingFetches = new Map<number, (reply: FetchedMessage) => void>();
  const pendingMcp = new Map<number, (reply: string) => void>();
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
        } else if (message.type === "mcp_result") {
          pendingMcp.get(message.id)?.(JSON.stringify(message));
          pendingMcp.delete(message.id);
        }
      }
    }
    // The server is gone: so is this process.
    Deno.exit(0);
  })();
  if (!init) await new Promise<void>((resolve) => wake.init = resolve);
  const config = init as unknown as InitMessage;
  // The interrupt thread starts now and boots on the other core while Pyodide loads on this one.
  const interruptListening = config.makeSnapshot ? undefined : listenForInterrupts();
  limit = config.outputLimitBytes;
  out = newCapture(limit);
  err = newCapture(limit);

  brokerDownloads(send, pendingFetches);

  const started = performance.now();
  // The snapshot is read and checked while Pyodide loads its own files; Pyodide awaits it before it uses
  // any byte of it. (Held in an object emptied after boot: its 30 MB must not live as long as this function.)
  const boot = {
    snapshot: config.snapshotPath
      ? verifiedSnapshot(config.snapshotPath, config.snapshotSha256, send)
      : undefined,
  };
  const lockText = await Deno.readTextFile(config.lockFilePath);
  const { loadPyodide } = await import(config.pyodideUrl);
  const plainCopy = boot.snapshot ? restoreSparsely() : undefined;
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
    ...(boot.snapshot ? { _loadSnapshot: boot.snapshot } : {}),
    ...(config.makeSnapshot ? { _makeSnapshot: true } : {}),
  }).finally(() => plainCopy?.());
  boot.snapshot = undefined;
  forgetBootData(pyodide);
  if (config.makeSnapshot) {
    // Only a process that never ran user code makes a snapshot, with the helper and its imports loaded.
    // Packages (micropip included) stay out: loading one leaves JS references a snapshot cannot hold.
    pyodide.runPython(config.helper);
    pyodide.runPython(CODE_RUNNER_MODULE);
    const path = `${config.workDir}/snapshot.bin`;
    Deno.writeFileSync(path, pyodide.makeMemorySnapshot());
    send({ type: "snapshot", path });
    Deno.exit(0);
  }
  pyodide.setStdout({ write: (buffer) => capture("out", buffer) });
  pyodide.setStderr({ write: (buffer) => capture("err", buffer) });
  // Python's stdin is empty: `input()` raises EOFError instead of reading the protocol stream.
  pyodide.setStdin({ stdin: () => null });

  const interrupt = await (interruptListening ?? listenForInterrupts());
  pyodide.setInterruptBuffer(interrupt);

  if (config.workspace) mountWorkspace(pyodide, config.workspace.path);
  // Code mode: `from code_runner import mcp`; each request goes to the server, which makes the call.
  let nextMcpId = 1;
  // The server answers at most 8 requests of a call at once; more wait here instead of being refused.
  let mcpInFlight = 0;
  const mcpWaiting: Array<() => void> = [];
  (globalThis as unknown as { codeRunnerMcp: (request: string) => Promise<string> }).codeRunnerMcp = async (
    request,
  ) => {
    while (mcpInFlight >= 8) await new Promise<void>((wake) => mcpWaiting.push(wake));
    mcpInFlight++;
    try {
      return await new Promise<string>((resolve) => {
        const id = nextMcpId++;
        pendingMcp.set(id, resolve);
        send({ ...JSON.parse(request), id });
      });
    } finally {
      mcpInFlight--;
      mcpWaiting.shift()?.();
    }
  };
  // A snapshot already holds the helper and the `code_runner` module; otherwise define them now.
  if (!config.snapshotPath) pyodide.runPython(CODE_RUNNER_MODULE);
  const helper =
    (config.snapshotPath
      ? pyodide.runPython("import sys\nsys.modules.get('_code_runner_helper')")
      : undefined) as Helper | undefined ?? pyodide.runPython(config.helper) as Helper;
  // What the lock file says about packages is needed only to install some: read on first use, not before
  // the interpreter is ready.
  let lockIndex: { lock: LockIndex; pyImportMap: unknown } | undefined;
  const lockInfo = () =>
    lockIndex ??= (() => {
      const lock = JSON.parse(lockText) as LockIndex;
      const importMap: Record<string, string> = {};
      for (const entry of Object.values(lock.packages)) {
        for (const name of entry.imports ?? []) importMap[name] = entry.name;
      }
      return { lock, pyImportMap: pyodide.toPy(importMap) };
    })();
  const pyIndexUrls = pyodide.toPy(config.indexUrls);
  /** Progress of the current call, for installs its own code starts with micropip, and how many run. */
  let reportInstall: (message: string) => void = () => {};
  let codeInstalls = 0;
  const convert = <T>(proxy: PyList): T => {
    try {
      return proxy.toJs({ dict_converter: Object.fromEntries }) as T;
    } finally {
      proxy.destroy();
    }
  };
  send({ type: "ready", bootMs: Math.round(performance.now() - started) });

  // Once the host has been idle a moment after boot or a call, a full garbage collection gives what they left
  // behind back to the system; V8 would otherwise keep it until the next call allocates (`--expose-gc`).
  const collectGarbage = (globalThis as { gc?: () => void }).gc;
  let garbage = true;
  const nextRun = () =>
    new Promise<void>((resolve) => {
      const timer = garbage && collectGarbage
        ? setTimeout(() => {
          garbage = false;
          collectGarbage();
        }, 1000)
        : undefined;
      wake.runner = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  for (;;) {
    if (runs.length === 0) await nextRun();
    garbage = true;
    const run = runs.shift();
    if (!run) continue;
    // Output goes to the server as it comes, so it can show a long run's latest lines and keep it all.
    out = newCapture(limit, (data) => send({ type: "output", callId: run.callId, stream: "stdout", data }));
    err = newCapture(limit, (data) => send({ type: "output", callId: run.callId, stream: "stderr", data }));
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
    const report = (message: string) => send({ type: "progress", callId: run.callId, message });
    reportInstall = report;
    progress = report;
    const { installed, problems, notInstalled } = await installFor(run.code, run.packages, {
      plan: (packages) =>
        convert<InstallPlan>(helper.plan(run.code, pyodide.toPy(packages), lockInfo().pyImportMap)),
      loadPackages: async (names) => {
        const messages: string[] = [];
        try {
          await pyodide.loadPackage(names, {
            messageCallback: (m: string) => progress?.(m),
            errorCallback: (m: string) => messages.push(m),
          });
        } catch (error) {
          messages.push(String((error as Error)?.message ?? error));
        }
        // The loader says "The following error occurred while loading <name>:" before each package's error.
        const byPackage = new Map<string, string[]>();
        let current = "";
        for (const message of messages) {
          const heading = message.match(/^The following error occurred while loading (.+):$/);
          if (heading) current = (heading[1] ?? "").toLowerCase();
          else byPackage.set(current, [...byPackage.get(current) ?? [], message]);
        }
        const loaded = new Set(Object.keys(pyodide.loadedPackages).map((name) => name.toLowerCase()));
        const failed: Record<string, string> = {};
        for (const name of names) {
          if (loaded.has(name.toLowerCase())) continue;
          failed[name] = (byPackage.get(name.toLowerCase()) ?? byPackage.get("") ?? messages).join(" ") ||
            "Pyodide's loader did not load it";
        }
        return failed;
      },
      micropipReady: () => helper.micropip_ready(),
      micropipFromIndexes: async () =>
        await helper.micropip_from_index(pyIndexUrls, lockInfo().lock.packages.micropip?.version ?? ""),
      configureMicropip: (indexFirst) =>
        helper.configure_micropip(pyIndexUrls, indexFirst, (active, message) => {
          // The code's own micropip.install(): progress like an automatic install (it counts as execution).
          codeInstalls = Math.max(0, codeInstalls + (active ? 1 : -1));
          progress = codeInstalls ? reportInstall : null;
          if (message) reportInstall(message);
        }),
      pipInstall: async (requirements, indexFirst) => {
        loaderErrors = [];
        const failure = await helper.pip_install(pyodide.toPy(requirements), indexFirst);
        const errors = loaderErrors.filter((line) => !/^The following error occurred/.test(line));
        return failure && errors.length ? `${failure}: ${errors.join(" ")}` : failure;
      },
      missingImports: () => convert<string[]>(helper.missing_imports(run.code)),
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
      notInstalled: [] as NotInstalled[],
    }));
    progress = null;
    const notes = notInstalled.length ? { notInstalled } : {};
    if (problems.length) {
      done({ outcome: "install_error", error: problems.join("\n"), installed, ...notes });
      continue;
    }
    // What could not be installed is said where the code's own errors go; the code runs anyway.
    for (const { module, error } of notInstalled) {
      capture("err", encoder.encode(`Could not install ${module} (imported by the code): ${error}\n`));
    }
    // Only the execution counts against the call's time limit.
    Atomics.store(interrupt, 0, 0);
    if (announced) send({ type: "executing", callId: run.callId });
    try {
      const ran = helper.run(run.code, limit);
      const report = ran.type === "coroutine" ? await (ran as PyCoroutine) : ran as PyReport;
      const result = report.toJs({ dict_converter: Object.fromEntries });
      Atomics.store(interrupt, 0, 0);
      done({ ...result, installed, ...notes });
    } catch (error) {
      // An exception escaping the helper means the interpreter itself broke (e.g. os._exit).
      send({ type: "fatal", error: String((error as Error)?.message ?? error) });
      Deno.exit(70);
    }
  }
}

/**
 * Output of the current call: the first 3/4 and the last 1/4 of the limit (the rest is counted, not kept),
 * and, when `onFlush` is set, every byte handed on in batches, base64-encoded, for the server to follow the
 * run and keep the whole stream. The same cut as `HeadTailBuffer` in `src/capped_output.ts` (this file runs
 * serialized in the sandbox and cannot import it).
 */
interface Capture {
  head: Uint8Array;
  headLength: number;
  /** A ring of the latest bytes after the head; `tailWritten` modulo its size is where the next goes. */
  tail: Uint8Array;
  tailWritten: number;
  total: number;
  limit: number;
  onFlush: ((base64: string) => void) | null;
  pending: Uint8Array[];
  pendingBytes: number;
  lastFlush: number;
  /** Hands on what is pending while Python waits (asyncio), since a busy Python never yields to timers. */
  timer: ReturnType<typeof setInterval> | null;
}

function newCapture(limit: number, onFlush?: (base64: string) => void): Capture {
  const headSize = Math.floor(limit * 3 / 4);
  const c: Capture = {
    head: new Uint8Array(headSize),
    headLength: 0,
    tail: new Uint8Array(limit - headSize),
    tailWritten: 0,
    total: 0,
    limit,
    onFlush: onFlush ?? null,
    pending: [],
    pendingBytes: 0,
    lastFlush: 0,
    timer: null,
  };
  if (onFlush) c.timer = setInterval(() => flushCapture(c), 1000);
  return c;
}

function addToCapture(c: Capture, chunk: Uint8Array): number {
  c.total += chunk.length;
  let rest = chunk;
  if (c.headLength < c.head.length) {
    const take = Math.min(rest.length, c.head.length - c.headLength);
    c.head.set(rest.subarray(0, take), c.headLength);
    c.headLength += take;
    rest = rest.subarray(take);
  }
  const size = c.tail.length;
  if (rest.length > 0 && size > 0) {
    if (rest.length > size) {
      c.tailWritten += rest.length - size;
      rest = rest.subarray(rest.length - size);
    }
    const at = c.tailWritten % size;
    const first = Math.min(rest.length, size - at);
    c.tail.set(rest.subarray(0, first), at);
    c.tail.set(rest.subarray(first), 0);
    c.tailWritten += rest.length;
  }
  if (c.onFlush) {
    // Pyodide reuses its write buffer: keep a copy.
    c.pending.push(chunk.slice());
    c.pendingBytes += chunk.length;
    // Output after a quiet moment goes at once (the server shows the latest lines); a flood goes in batches.
    if (c.pendingBytes >= 65536 || Date.now() - c.lastFlush >= 250) flushCapture(c);
  }
  return chunk.length;
}

/** Hands the pending bytes to `onFlush`. */
function flushCapture(c: Capture): void {
  if (!c.onFlush || c.pendingBytes === 0) return;
  const bytes = new Uint8Array(c.pendingBytes);
  let at = 0;
  for (const part of c.pending) {
    bytes.set(part, at);
    at += part.length;
  }
  c.pending = [];
  c.pendingBytes = 0;
  c.lastFlush = Date.now();
  // At most 1 MiB a message: the server refuses a message line much longer than that.
  for (let from = 0; from < bytes.length; from += 1024 * 1024) {
    const part = bytes.subarray(from, from + 1024 * 1024);
    let binary = "";
    for (let i = 0; i < part.length; i += 0x8000) {
      binary += String.fromCharCode(...part.subarray(i, i + 0x8000));
    }
    c.onFlush(btoa(binary));
  }
}

/**
 * Ends a capture (handing on what is pending): the text, never cutting a UTF-8 character in half, with a
 * marker where bytes were left out.
 */
function finishCapture(c: Capture): { text: string; truncated: boolean; totalBytes: number } {
  flushCapture(c);
  if (c.timer !== null) clearInterval(c.timer);
  c.timer = null;
  const size = c.tail.length;
  const tailLength = Math.min(c.tailWritten, size);
  const start = c.tailWritten % size;
  const tail = new Uint8Array(tailLength);
  if (c.tailWritten <= size) tail.set(c.tail.subarray(0, tailLength));
  else {
    tail.set(c.tail.subarray(start));
    tail.set(c.tail.subarray(0, start), size - start);
  }
  const decoder = new TextDecoder();
  if (c.total <= c.limit) {
    const all = new Uint8Array(c.headLength + tailLength);
    all.set(c.head.subarray(0, c.headLength));
    all.set(tail, c.headLength);
    return { text: decoder.decode(all), truncated: false, totalBytes: c.total };
  }
  // The head ends before a character the cut would split; the tail starts after one.
  let end = c.headLength;
  let back = end;
  while (back > 0 && end - back < 4 && ((c.head[back - 1] as number) & 0xc0) === 0x80) back--;
  if (back > 0) {
    const lead = c.head[back - 1] as number;
    const width = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (end - (back - 1) < width) end = back - 1;
  }
  let from = 0;
  while (from < tail.length && from < 3 && ((tail[from] as number) & 0xc0) === 0x80) from++;
  const leftOut = c.total - end - (tail.length - from);
  const text = decoder.decode(c.head.subarray(0, end)) +
    `\n[… output truncated: ${leftOut} bytes left out here (limit ${c.limit} bytes: the first 3/4 and the ` +
    "last 1/4 are shown) …]\n" + decoder.decode(tail.subarray(from));
  return { text, truncated: true, totalBytes: c.total };
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
 * The snapshot, checked here where it is read anyway against the hash the server recorded; each chunk is
 * hashed while the next one is read. (This file runs serialized in the sandbox and cannot import
 * src/sha256.ts.)
 */
async function verifiedSnapshot(
  path: string,
  sha256: string | undefined,
  send: (message: unknown) => void,
): Promise<Uint8Array> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  const chunk = 4 * 1024 * 1024;
  using file = await Deno.open(path);
  const { size } = await file.stat();
  const bytes = new Uint8Array(size);
  let offset = 0;
  let reading: Promise<number | null> | null = file.read(bytes.subarray(0, chunk));
  while (reading) {
    const read = await reading;
    if (read === null) break;
    const start = offset;
    offset += read;
    reading = offset < size ? file.read(bytes.subarray(offset, offset + chunk)) : null;
    hash.update(bytes.subarray(start, offset));
  }
  if (offset !== size || hash.digest("hex") !== sha256) {
    send({ type: "fatal", error: `snapshot ${path} does not match its sha256; not using it` });
    Deno.exit(75);
  }
  return bytes;
}

/**
 * While Pyodide copies a snapshot into its fresh WebAssembly memory, the 4 KiB pages that are zero in both
 * (half of a snapshot) are skipped, so they are never touched and cost no memory; the result is the same as
 * a full copy. Returns the function that puts the plain copy back.
 */
function restoreSparsely(): () => void {
  const plainSet = Int8Array.prototype.set;
  const pageBytes = 4096;
  const pageWords = pageBytes / 4;
  const isZero = (words: Int32Array, start: number) => {
    for (let i = start, end = start + pageWords; i < end; i += 4) {
      if (
        ((words[i] as number) | (words[i + 1] as number) | (words[i + 2] as number) |
          (words[i + 3] as number)) !== 0
      ) {
        return false;
      }
    }
    return true;
  };
  Int8Array.prototype.set = function (this: Int8Array, source: ArrayLike<number>, offset = 0): void {
    if (
      !(source instanceof Uint8Array) || source.length < 1024 * 1024 ||
      offset + source.length > this.length ||
      (this.byteOffset + offset) % 4 !== 0 || source.byteOffset % 4 !== 0
    ) {
      return plainSet.call(this, source, offset);
    }
    const from = new Int32Array(source.buffer, source.byteOffset, source.length >> 2);
    const to = new Int32Array(this.buffer, this.byteOffset + offset, source.length >> 2);
    // Bytes from `copyFrom` up to the current page still have to be copied.
    let copyFrom = 0;
    const copyUpTo = (end: number) => {
      if (end > copyFrom) plainSet.call(this, source.subarray(copyFrom, end), offset + copyFrom);
    };
    for (let page = 0; (page + 1) * pageBytes <= source.length; page++) {
      const word = page * pageWords;
      if (isZero(from, word) && isZero(to, word)) {
        copyUpTo(page * pageBytes);
        copyFrom = (page + 1) * pageBytes;
      }
    }
    copyUpTo(source.length);
  };
  return () => {
    Int8Array.prototype.set = plainSet;
  };
}

/**
 * Pyodide keeps its boot options and the loader of `pyodide.asm.wasm`; after boot the snapshot bytes
 * (30 MB), the lock text and the wasm file's bytes (10 MB) are garbage. Private fields of the pinned version.
 */
function forgetBootData(pyodide: Pyodide): void {
  const internals = pyodide as unknown as {
    _api?: { config?: Record<string, unknown> };
    _module?: Record<string, unknown>;
  };
  const bootOptions = internals._api?.config;
  if (bootOptions) {
    bootOptions._loadSnapshot = undefined;
    bootOptions.lockFileContents = undefined;
  }
  if (internals._module) internals._module.instantiateWasm = undefined;
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

/** What a call needs, as the helper's planner sees it. */
export interface InstallPlan {
  /** Pyodide distribution packages the code's imports need, as [module, package]. */
  distribution: Array<[string, string]>;
  /** Requirements the call names (the `packages` argument, PEP 723 metadata): installed strictly. */
  declared: string[];
  /** Other missing imports, with the PyPI project guessed for each, as [module, project]. */
  guessed: Array<[string, string]>;
}

/** An import that could not be installed, and why. */
export interface NotInstalled {
  module: string;
  error: string;
}

/** What {@linkcode installFor} did. */
export interface InstallOutcome {
  /** Packages installed for this call. */
  installed: string[];
  /** Failures of what the call named explicitly: the code must not run. */
  problems: string[];
  /** Imports of the code that could not be installed: reported, and the code runs anyway. */
  notInstalled: NotInstalled[];
}

/** What {@linkcode installFor} installs with: Pyodide's loader, micropip and the helper's planner. */
export interface Installer {
  plan(packages: string[]): InstallPlan;
  /** Loads distribution packages with Pyodide's loader; answers the error of each one that did not load. */
  loadPackages(names: string[]): Promise<Record<string, string>>;
  /** Whether micropip is imported and configured (once per interpreter). */
  micropipReady(): boolean;
  /** Installs micropip from the package indexes; answers the failure, or "". */
  micropipFromIndexes(): Promise<string>;
  /** Points micropip at the indexes, asking them before Pyodide's distribution when `indexFirst`. */
  configureMicropip(indexFirst: boolean): void;
  /** Installs requirements with micropip; answers the failure, or "" on success. */
  pipInstall(requirements: string[], indexFirst: boolean): Promise<string>;
  /** Top-level modules the code imports that are still missing. */
  missingImports(): string[];
  /** Announces the install phase (once a call). */
  installing(): void;
  progress(message: string): void;
}

/**
 * Installs what a call needs. What the call names (`packages`, PEP 723) is installed strictly: a failure is a
 * problem and the code must not run. The imports found in the code are installed best effort — distribution
 * packages by Pyodide's import map, others by their guessed PyPI name — and what cannot be installed is only
 * noted: an optional import (`try: import ujson` … `except ImportError`) must not stop the code. micropip is
 * loaded from Pyodide's distribution, or from the package indexes when the distribution cannot be reached,
 * which then also serve the distribution's packages that are on them.
 */
export async function installFor(
  code: string,
  packages: string[],
  installer: Installer,
): Promise<InstallOutcome> {
  const outcome: InstallOutcome = { installed: [], problems: [], notInstalled: [] };
  // Code without an import statement and no packages needs no planning (the common, fast case).
  if (!packages.length && !/\bimport\b|^# \/\/\/ script/m.test(code)) return outcome;
  const first = installer.plan(packages);
  if (!first.distribution.length && !first.declared.length && !first.guessed.length) return outcome;
  installer.installing();
  const installed = (names: string[]) => {
    for (const name of names) if (!outcome.installed.includes(name)) outcome.installed.push(name);
  };
  const note = (module: string, error: string) => {
    if (outcome.notInstalled.some((entry) => entry.module === module)) return;
    const line = error.split(/\s+/).join(" ").trim();
    outcome.notInstalled.push({ module, error: line.length > 600 ? `${line.slice(0, 600)} …` : line });
  };

  // micropip is the tool, not something the call asked for: loaded at most once a call, when needed.
  let distributionDown = false;
  let micropip: Promise<string> | null = null;
  const getMicropip = () =>
    micropip ??= (async () => {
      if (installer.micropipReady()) return "";
      const failed = (await installer.loadPackages(["micropip"])).micropip;
      if (failed !== undefined) {
        distributionDown = true;
        installer.progress("Pyodide's distribution did not answer; getting micropip from the package index");
        const fromIndexes = await installer.micropipFromIndexes();
        if (fromIndexes) {
          return `micropip (the installer) could not be loaded, from Pyodide's distribution: ${failed}; ` +
            `nor from the package indexes: ${fromIndexes}`;
        }
      }
      installer.configureMicropip(failed !== undefined);
      return "";
    })();
  const pip = async (requirements: string[], indexFirst = false): Promise<string> => {
    const missing = await getMicropip();
    if (missing) return missing;
    installer.progress(`Installing ${requirements.join(", ")}`);
    return await installer.pipInstall(requirements, indexFirst || distributionDown);
  };
  /** Installs each requirement it can (all at once first: micropip installs nothing if one fails). */
  const pipEach = async (requirements: string[], indexFirst = false): Promise<Map<string, string>> => {
    const failures = new Map<string, string>();
    if (!requirements.length) return failures;
    const together = await pip(requirements, indexFirst);
    if (!together) installed(requirements);
    else if (requirements.length === 1) failures.set(requirements[0] as string, together);
    else {
      for (const requirement of requirements) {
        const alone = await pip([requirement], indexFirst);
        if (alone) failures.set(requirement, alone);
        else installed([requirement]);
      }
    }
    return failures;
  };

  // Distribution packages the imports need, best effort; a package that does not load is tried on the indexes
  // (a pure-Python one is usually there: the way in when the distribution cannot be reached).
  const tried = new Set<string>();
  const loadForImports = async (pairs: Array<[string, string]>) => {
    const fresh = pairs.filter(([, name]) => !tried.has(name));
    for (const [, name] of fresh) tried.add(name);
    for (const [module, name] of fresh) {
      if (name !== "micropip") continue;
      const failure = await getMicropip();
      if (failure) note(module, failure);
    }
    const names = [...new Set(fresh.map(([, name]) => name))].filter((name) => name !== "micropip");
    if (!names.length) return;
    const failed = await installer.loadPackages(names);
    installed(names.filter((name) => failed[name] === undefined));
    const retry = await pipEach(Object.keys(failed), true);
    for (const [module, name] of fresh) {
      const again = retry.get(name);
      if (again === undefined) continue;
      // micropip may have tried the same loader again: then its error says nothing new.
      const first = failed[name] ?? "";
      note(module, again.includes(first) ? first : `${first} (and from the package indexes: ${again})`);
    }
  };
  await loadForImports(first.distribution);

  // What the call names: strictly.
  if (first.declared.length) {
    const failure = await pip(first.declared);
    if (failure) {
      outcome.problems.push(`Could not install ${first.declared.join(", ")}: ${failure}`);
      return outcome;
    }
    installed(first.declared);
  }

  // Other imports, by their PyPI names; what was installed may have provided some: plan again only then.
  const later = outcome.installed.length ? installer.plan([]) : first;
  if (later !== first) await loadForImports(later.distribution);
  const projects = [...new Set(later.guessed.map(([, project]) => project))];
  const failures = await pipEach(projects);
  for (const [module, project] of later.guessed) {
    const failure = failures.get(project);
    if (failure === undefined) continue;
    note(module, project === module ? failure : `tried the PyPI project ${project}: ${failure}`);
  }

  // Imports still missing although their install seemed to work (a guess that was the wrong project).
  if (outcome.installed.length) {
    for (const module of installer.missingImports()) {
      const guess = later.guessed.find(([name]) => name === module)?.[1];
      note(
        module,
        guess
          ? `the PyPI project ${guess} was installed but does not provide it`
          : "no installed package provides it",
      );
    }
  }
  return outcome;
}

/** The `code_runner` Python module: `mcp` calls the operator's upstream MCP tools through the server. */
const CODE_RUNNER_MODULE = `
import importlib.machinery, json, sys, types


class McpError(Exception):
    """A code-mode call failed: the tool said so, or the call was refused; \`code\` says which."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


async def _request(message):
    # Imported here: a memory snapshot holds this module, and cannot hold a reference to a JavaScript object.
    import js
    reply = json.loads(await js.codeRunnerMcp(json.dumps(message)))
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise McpError(error.get("code"), error.get("message", "the call failed"))
    return reply.get("value")


class _Tool:
    def __init__(self, server, tool):
        self._server, self._tool = server, tool

    async def __call__(self, args=None, /, **kwargs):
        value = await _request({"type": "mcp_call", "server": self._server, "tool": self._tool,
                                "args": {**(args or {}), **kwargs}})
        if value.get("isError"):
            raise McpError("tool_error", value.get("text") or f"{self._server}.{self._tool} returned an error")
        return value["structured"] if value.get("structured") is not None else value.get("text")


class _Named:
    def __init__(self, make):
        self._make = make

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._make(name)

    __getitem__ = __getattr__


class _Mcp:
    """\`await mcp.servers.<server>.<tool>(**args)\` gives the structured result (else the text);
    \`await mcp.call(server, tool, args)\` the whole result; \`await mcp.list()\` the servers and tools."""

    servers = _Named(lambda server: _Named(lambda tool: _Tool(server, tool)))

    async def list(self):
        return await _request({"type": "mcp_list"})

    async def call(self, server, tool, args=None, /, **kwargs):
        return await _request({"type": "mcp_call", "server": server, "tool": tool, "args": {**(args or {}), **kwargs}})


_module = types.ModuleType("code_runner")
_module.__spec__ = importlib.machinery.ModuleSpec("code_runner", None)
_module.mcp = _Mcp()
_module.McpError = McpError
sys.modules["code_runner"] = _module
`;

/** Everything the host runs, in the order it is defined. */
const HOST_PARTS = [
  newCapture,
  addToCapture,
  flushCapture,
  finishCapture,
  brokerDownloads,
  verifiedSnapshot,
  restoreSparsely,
  forgetBootData,
  listenForInterrupts,
  mountWorkspace,
  installFor,
  host,
];

/** The host as a `data:` URL, ready to be the main module of `deno run`. */
export const HOST_URL = `data:application/javascript,${
  encodeURIComponent(
    `const CODE_RUNNER_MODULE = ${JSON.stringify(CODE_RUNNER_MODULE)};\n` +
      `${HOST_PARTS.map((part) => part.toString()).join("\n")}\nhost();`,
  )
}`;
