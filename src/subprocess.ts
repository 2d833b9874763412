/**
 * The one way a child process is started: in its own process group, registered so the server can kill it,
 * with a memory watchdog, capped output for one-shot runs, and a kill that reaches every process it started.
 *
 * @module
 */
import { join } from "node:path";
import { type CappedText, readCapped } from "./capped_output.ts";

/** How long a process group gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 200;
const MEMORY_POLL_MS = 50;

/** Tracks live process groups so the server can kill them all on shutdown. */
export class ProcessGroups {
  #groups = new Set<number>();

  /** Remembers a live group leader. */
  add(pid: number): void {
    this.#groups.add(pid);
  }

  /** Forgets a group leader that has exited. */
  delete(pid: number): void {
    this.#groups.delete(pid);
  }

  /** Number of live groups. */
  get size(): number {
    return this.#groups.size;
  }

  /** Sends SIGKILL to every live group. */
  killAll(): void {
    for (const pid of this.#groups) killChild(pid, "SIGKILL");
    this.#groups.clear();
  }
}

/** How to start a child. */
export interface SpawnOptions {
  /** Program to run. */
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd: string;
  /** Where the group is registered while it lives. */
  groups: ProcessGroups;
  /**
   * `command` makes itself a session and group leader before it execs the real program (util-linux
   * `setsid`), so Deno need not: a Deno spawn that does (`detached`) forks the whole server, 5 ms at 160 MB,
   * where a plain spawn takes 0.4 ms.
   */
  leadsOwnSession?: boolean;
  /** Kill the group when the child's resident memory exceeds this, for its whole life (Linux only). */
  memoryLimitBytes?: number;
  /** Kill the group when what it wrote below these directories exceeds the limit, for its whole life. */
  diskLimit?: DiskLimit;
  /** Runs once the child has exited and its group is gone (e.g. removing what it left behind). */
  afterExit?: () => Promise<void>;
  /**
   * Bytes a one-shot child writes at the end of both stdout and stderr, followed by its exit code and a
   * newline, once its work is done and it is about to exit: {@linkcode Child.finish} then answers with that
   * code at once instead of waiting for the process to be torn down, and the marker is removed from both
   * streams. A child that ends any other way (a crash, a signal, a kill) is waited for as usual. Only the
   * child's own trusted code may know the marker (see javascript/launcher.ts). Such a child's memory and
   * disk watchdogs start with `finish`: before it is given work it only boots.
   */
  endMarker?: Uint8Array;
}

/** How a child ended. */
export interface ChildExit {
  /** Exit code; `null` when a signal ended the process. */
  code: number | null;
  /** The signal that ended the process, if any. */
  signal: Deno.Signal | null;
  /** Whether the memory watchdog killed it. */
  memoryExceeded: boolean;
  /** Whether the disk watchdog killed it. */
  diskExceeded: boolean;
}

/** A disk quota: the bytes (and entries) the directories a child writes may hold together. */
export interface DiskLimit {
  dirs: readonly string[];
  limitBytes: number;
  /** Files and directories; many empty files fill a disk's inodes and slow every check. */
  limitEntries: number;
}

/** What to hold a one-shot child to while it runs. */
export interface FinishOptions {
  /** Bytes written to the child's stdin, which is then closed. */
  stdin?: Uint8Array;
  /** Cap per stream (stdout, stderr). */
  outputLimitBytes: number;
  /** Aborting kills the group: SIGTERM, then SIGKILL after {@linkcode KILL_GRACE_MS}. */
  signal: AbortSignal;
  /** Sees every chunk of output as it comes, also what the cap leaves out. */
  onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
}

/** Everything that happened to a finished one-shot child. */
export interface ProcessOutcome extends ChildExit {
  stdout: CappedText;
  stderr: CappedText;
  /** Time from {@linkcode Child.finish} to exit. */
  durationMs: number;
  /** Whether `signal` was aborted before the child finished. */
  aborted: boolean;
}

/**
 * A child in its own session and process group. A one-shot child (a JavaScript run) is started early and
 * {@linkcode finish}ed when there is work; a long-lived one (a Python host) is talked to over its pipes.
 */
export class Child {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: ReadableStream<Uint8Array>;
  readonly #stderr: ReadableStream<Uint8Array>;
  /** The exit code the child announced with its end marker on both streams. */
  readonly #announced: Promise<number> | null = null;
  #exited = false;
  readonly #limits: Pick<SpawnOptions, "memoryLimitBytes" | "diskLimit">;
  #watchdogs: Array<{ stop(): void }> = [];
  #memoryExceeded = false;
  #diskExceeded = false;
  /** Resolves once the process has exited and its group is killed. */
  readonly exit: Promise<ChildExit>;
  /** Resolves after {@linkcode exit}, once `afterExit` has run too. */
  readonly closed: Promise<ChildExit>;

  constructor(options: SpawnOptions) {
    this.#child = new Deno.Command(options.command, {
      args: [...options.args],
      env: options.env,
      clearEnv: true,
      cwd: options.cwd,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      // Own session and process group, so a kill reaches every process the child started.
      detached: !options.leadsOwnSession,
    }).spawn();
    const pid = this.#child.pid;
    options.groups.add(pid);
    this.#stdout = this.#child.stdout;
    this.#stderr = this.#child.stderr;
    const { endMarker } = options;
    if (endMarker) {
      const out = Promise.withResolvers<number>(), err = Promise.withResolvers<number>();
      this.#stdout = this.#stdout.pipeThrough(untilEndMarker(endMarker, out.resolve));
      this.#stderr = this.#stderr.pipeThrough(untilEndMarker(endMarker, err.resolve));
      this.#announced = Promise.all([out.promise, err.promise]).then(([code]) => code);
    }
    this.#limits = options;
    // A one-shot child only boots until it is given work (see `finish`): nothing to watch before that.
    if (!endMarker) this.#watch();
    this.exit = this.#child.status.then((status) => {
      this.#exited = true;
      for (const watchdog of this.#watchdogs.splice(0)) watchdog.stop();
      // Grandchildren may outlive the leader and hold the pipes open; the group goes with it.
      killGroup(pid, "SIGKILL");
      options.groups.delete(pid);
      return {
        code: status.signal ? null : status.code,
        signal: status.signal,
        memoryExceeded: this.#memoryExceeded,
        diskExceeded: this.#diskExceeded,
      };
    });
    this.closed = this.exit.then(async (exit) => {
      await options.afterExit?.().catch(() => {});
      return exit;
    });
  }

  /** The process id (and process group id). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether the process has exited (e.g. was killed while waiting). */
  get exited(): boolean {
    return this.#exited;
  }

  /** Whether the disk watchdog has killed the process. */
  get diskExceeded(): boolean {
    return this.#diskExceeded;
  }

  /** Whether the memory watchdog has killed the process. */
  get memoryExceeded(): boolean {
    return this.#memoryExceeded;
  }

  get stdin(): WritableStream<Uint8Array> {
    return this.#child.stdin;
  }

  get stdout(): ReadableStream<Uint8Array> {
    return this.#stdout;
  }

  get stderr(): ReadableStream<Uint8Array> {
    return this.#stderr;
  }

  /** Signals the whole group (SIGKILL unless told otherwise). */
  kill(signal: Deno.Signal = "SIGKILL"): void {
    if (this.#exited) killGroup(this.pid, signal);
    else killChild(this.pid, signal);
  }

  /** Signals the leader alone, e.g. SIGUSR1 to interrupt Python. */
  signal(signal: Deno.Signal): void {
    try {
      if (Deno.build.os !== "windows") Deno.kill(this.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /** Kills a child that will never be finished, and waits until it is cleaned up. */
  async discard(): Promise<void> {
    this.kill();
    await this.#child.stdin.close().catch(() => {});
    await Promise.all([this.#stdout.cancel(), this.#stderr.cancel()]).catch(() => {});
    await this.closed;
  }

  /** Starts the memory and disk watchdogs (once). */
  #watch(): void {
    if (this.#exited || this.#watchdogs.length) return;
    const { memoryLimitBytes, diskLimit } = this.#limits;
    if (memoryLimitBytes) {
      this.#watchdogs.push(watchMemory(this.pid, memoryLimitBytes, () => this.#memoryExceeded = true));
    }
    if (diskLimit) this.#watchdogs.push(watchDisk(this.pid, diskLimit, () => this.#diskExceeded = true));
  }

  /** How a child that announced its end exits: with that code, unless a watchdog got to it first. */
  #announcedExit(code: number): ChildExit {
    return { code, signal: null, memoryExceeded: this.#memoryExceeded, diskExceeded: this.#diskExceeded };
  }

  /** Feeds stdin and runs a one-shot child to completion, with its output capped. */
  async finish(options: FinishOptions): Promise<ProcessOutcome> {
    const { onOutput } = options;
    const started = performance.now();
    this.#watch();
    let aborted = false;
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      aborted = true;
      this.kill("SIGTERM");
      graceTimer ??= setTimeout(() => this.kill("SIGKILL"), KILL_GRACE_MS);
    };
    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener("abort", onAbort, { once: true });
    const writer = this.#child.stdin.getWriter();
    // A child that exits without reading its stdin makes this write fail; its outcome tells why.
    (options.stdin ? writer.write(options.stdin) : Promise.resolve()).then(() => writer.close()).catch(
      () => {},
    );
    try {
      const output = Promise.all([
        readCapped(this.#stdout, options.outputLimitBytes, onOutput && ((c) => onOutput("stdout", c))),
        readCapped(this.#stderr, options.outputLimitBytes, onOutput && ((c) => onOutput("stderr", c))),
      ]);
      // Answering waits neither for `afterExit` nor, when the child announced its end, for its teardown:
      // cleaning up is off the run's critical path. Security: an announced end is not trusted to mean an
      // end (the code may have written the marker itself and kept going): the group is killed, and the
      // answer waits for the process to be gone, which takes a moment, not a V8 teardown.
      let announcedExit: ChildExit | undefined;
      const announced = this.#announced?.then(async (code) => {
        announcedExit = this.#announcedExit(code);
        this.kill("SIGKILL");
        await this.exit;
      });
      await (announced ? Promise.race([this.exit, announced]) : this.exit);
      const exit = announcedExit ?? await this.exit;
      const [stdout, stderr] = await output;
      return { ...exit, stdout, stderr, durationMs: Math.round(performance.now() - started), aborted };
    } finally {
      options.signal.removeEventListener("abort", onAbort);
      clearTimeout(graceTimer);
    }
  }
}

/**
 * Passes a stream on until it ends with `marker`, an exit code and a newline, which it removes; then calls
 * `onEnd` with the code and ends the stream. The marker counts only as the very end of what arrived so far,
 * never in the middle (the child writes it last), so only the last few bytes are ever compared, whatever the
 * output holds; those wait for the next chunk.
 *
 * @example
 * ```ts
 * const marker = new TextEncoder().encode("\0end:");
 * let code: number | undefined;
 * const stream = new Blob(["hello\0en", "d:3\n"]).stream().pipeThrough(untilEndMarker(marker, (c) => code = c));
 * if (await new Response(stream).text() !== "hello" || code !== 3) throw new Error("cut at the marker");
 * ```
 */
export function untilEndMarker(
  marker: Uint8Array,
  onEnd: (code: number) => void,
): TransformStream<Uint8Array, Uint8Array> {
  // The marker, up to three digits and a newline.
  const tail = marker.length + 4;
  let held = new Uint8Array(0);
  return new TransformStream({
    transform(chunk, controller) {
      const data = held.length ? concatBytes(held, chunk) : chunk;
      const end = endAt(data, marker);
      if (end) {
        if (end.at > 0) controller.enqueue(data.subarray(0, end.at));
        onEnd(end.code);
        controller.terminate();
        return;
      }
      const keep = Math.min(data.length, tail - 1);
      if (data.length > keep) controller.enqueue(data.subarray(0, data.length - keep));
      held = data.slice(data.length - keep);
    },
    flush(controller) {
      if (held.length) controller.enqueue(held);
    },
  });
}

/** Where `data` ends with `marker`, 1–3 digits and a newline, and the code; null when it does not. */
function endAt(data: Uint8Array, marker: Uint8Array): { at: number; code: number } | null {
  if (data[data.length - 1] !== 0x0a) return null;
  let code = 0;
  for (let digits = 1; digits <= 3; digits++) {
    const digit = (data[data.length - 1 - digits] ?? 0) - 0x30;
    if (digit < 0 || digit > 9) return null;
    code += digit * 10 ** (digits - 1);
    const at = data.length - 1 - digits - marker.length;
    if (at < 0) return null;
    let matches = true;
    for (let i = 0; i < marker.length && matches; i++) matches = data[at + i] === marker[i];
    if (matches) return { at, code };
  }
  return null;
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

/** Signals a whole process group, ignoring one that is already gone. */
export function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(Deno.build.os === "windows" ? pid : -pid, signal);
  } catch {
    // Already exited.
  }
}

/**
 * Signals a child's group, or the child alone while it is not yet a group leader (spawned through `setsid`,
 * which it has not run yet: it has started nothing). Only for a child not yet reaped, whose pid cannot have
 * been reused.
 */
function killChild(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(Deno.build.os === "windows" ? pid : -pid, signal);
  } catch {
    try {
      Deno.kill(pid, signal);
    } catch {
      // Already exited.
    }
  }
}

/**
 * Kills a process group when its leader's resident memory exceeds `limitBytes` (Linux; elsewhere a no-op),
 * calling `onExceeded` first.
 */
function watchMemory(pid: number, limitBytes: number, onExceeded: () => void): { stop(): void } {
  if (Deno.build.os !== "linux") return { stop() {} };
  const timer = setInterval(() => {
    const rss = residentBytes(pid);
    if (rss !== null && rss > limitBytes) {
      onExceeded();
      killGroup(pid, "SIGKILL");
    }
  }, MEMORY_POLL_MS);
  return { stop: () => clearInterval(timer) };
}

/** Resident set size of a process from /proc, or null when it is gone. */
function residentBytes(pid: number): number | null {
  try {
    const statm = Deno.readTextFileSync(`/proc/${pid}/statm`);
    const pages = Number(statm.split(" ")[1]);
    return Number.isFinite(pages) ? pages * 4096 : null;
  } catch {
    return null;
  }
}

/** Disk checks are at least this far apart, and four times as far as the last check took. */
const DISK_POLL_MS = 50;

/**
 * Kills a process group when the directories it writes hold more than the limit, calling `onExceeded`
 * first. Between two checks a fast writer can get past the limit by what it writes in one interval; the
 * file-size limit set where the child starts bounds each single file.
 */
function watchDisk(pid: number, limit: DiskLimit, onExceeded: () => void): { stop(): void } {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = async () => {
    const started = performance.now();
    const usage = await diskUsage(limit.dirs, limit);
    if (stopped) return;
    if (usage.bytes > limit.limitBytes || usage.entries > limit.limitEntries) {
      onExceeded();
      killGroup(pid, "SIGKILL");
      return;
    }
    timer = setTimeout(check, Math.max(DISK_POLL_MS, 4 * (performance.now() - started)));
  };
  timer = setTimeout(check, DISK_POLL_MS);
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * What `dirs` hold on disk (allocated blocks, so a sparse file counts what it really takes), stopping early
 * past the limit. Symbolic links are not followed.
 */
export async function diskUsage(
  dirs: readonly string[],
  limit: { limitBytes: number; limitEntries: number } = { limitBytes: Infinity, limitEntries: Infinity },
): Promise<{ bytes: number; entries: number }> {
  let bytes = 0;
  let entries = 0;
  const pending = [...dirs];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    try {
      for await (const entry of Deno.readDir(dir)) {
        const path = join(dir, entry.name);
        entries++;
        const info = await Deno.lstat(path).catch(() => null);
        if (info) bytes += info.blocks !== null ? info.blocks * 512 : info.size;
        if (entry.isDirectory) pending.push(path);
        if (bytes > limit.limitBytes || entries > limit.limitEntries) return { bytes, entries };
      }
    } catch {
      // Not there (yet, or any more), or not readable: nothing counted.
    }
  }
  return { bytes, entries };
}
