/**
 * Spawns a child process in its own process group, with capped output, a memory watchdog and one
 * AbortSignal that kills the whole group.
 *
 * @module
 */
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
    for (const pid of this.#groups) killGroup(pid, "SIGKILL");
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
}

/** What to hold a started child to while it runs. */
export interface FinishOptions {
  /** Bytes written to the child's stdin, which is then closed. */
  stdin?: Uint8Array;
  /** Cap per stream (stdout, stderr). */
  outputLimitBytes: number;
  /** Kill the group when the child's resident memory exceeds this (Linux only). */
  memoryLimitBytes?: number;
  /** Aborting kills the group: SIGTERM, then SIGKILL after {@linkcode KILL_GRACE_MS}. */
  signal: AbortSignal;
}

/** Everything that happened to a finished child. */
export interface ProcessOutcome {
  /** Exit code; `null` when a signal ended the process. */
  exitCode: number | null;
  /** The signal that ended the process, if any. */
  signal: Deno.Signal | null;
  stdout: CappedText;
  stderr: CappedText;
  /** Time from {@linkcode StartedChild.finish} to exit. */
  durationMs: number;
  /** Whether the memory watchdog killed it. */
  memoryExceeded: boolean;
  /** Whether `signal` was aborted before the child finished. */
  aborted: boolean;
}

/**
 * A child started in its own session and process group, waiting for its stdin. Starting early and
 * finishing later lets a pool start processes before there is work for them.
 */
export class StartedChild {
  readonly #child: Deno.ChildProcess;
  readonly #groups: ProcessGroups;
  #exited = false;
  readonly status: Promise<Deno.CommandStatus>;

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
      detached: true,
    }).spawn();
    this.#groups = options.groups;
    this.#groups.add(this.#child.pid);
    this.status = this.#child.status;
    this.status.then(() => this.#exited = true);
  }

  /** The process id (and process group id). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether the process has exited (e.g. was killed while waiting). */
  get exited(): boolean {
    return this.#exited;
  }

  /** Kills the group and forgets it, for a child that will never be finished. */
  async discard(): Promise<void> {
    killGroup(this.pid, "SIGKILL");
    await this.#child.stdin.close().catch(() => {});
    await Promise.all([this.#child.stdout.cancel(), this.#child.stderr.cancel()]).catch(() => {});
    await this.status;
    this.#groups.delete(this.pid);
  }

  /** Feeds stdin and runs the child to completion. */
  async finish(options: FinishOptions): Promise<ProcessOutcome> {
    const started = performance.now();
    const child = this.#child;
    const pid = child.pid;
    let aborted = false;
    let memoryExceeded = false;
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      aborted = true;
      killGroup(pid, "SIGTERM");
      graceTimer ??= setTimeout(() => killGroup(pid, "SIGKILL"), KILL_GRACE_MS);
    };
    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener("abort", onAbort, { once: true });
    const watchdog = options.memoryLimitBytes
      ? watchMemory(pid, options.memoryLimitBytes, () => memoryExceeded = true)
      : undefined;
    const writer = child.stdin.getWriter();
    // A child that exits without reading its stdin makes this write fail; its outcome tells why.
    (options.stdin ? writer.write(options.stdin) : Promise.resolve()).then(() => writer.close()).catch(
      () => {},
    );
    try {
      const output = Promise.all([
        readCapped(child.stdout, options.outputLimitBytes),
        readCapped(child.stderr, options.outputLimitBytes),
      ]);
      const status = await child.status;
      // Grandchildren may outlive the leader and hold the pipes open; the group goes with it.
      killGroup(pid, "SIGKILL");
      const [stdout, stderr] = await output;
      return {
        exitCode: status.signal ? null : status.code,
        signal: status.signal,
        stdout,
        stderr,
        durationMs: Math.round(performance.now() - started),
        memoryExceeded,
        aborted,
      };
    } finally {
      options.signal.removeEventListener("abort", onAbort);
      watchdog?.stop();
      clearTimeout(graceTimer);
      this.#groups.delete(pid);
    }
  }
}

/**
 * Starts a child and runs it to completion.
 *
 * @example
 * ```ts
 * const outcome = await spawnCapped({
 *   command: Deno.execPath(), args: ["--version"], env: {}, cwd: "/tmp", groups: new ProcessGroups(),
 *   outputLimitBytes: 65536, signal: AbortSignal.timeout(5000),
 * });
 * ```
 */
export function spawnCapped(options: SpawnOptions & FinishOptions): Promise<ProcessOutcome> {
  return new StartedChild(options).finish(options);
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
 * Kills a process group when its leader's resident memory exceeds `limitBytes` (Linux; elsewhere a no-op),
 * calling `onExceeded` first.
 */
export function watchMemory(pid: number, limitBytes: number, onExceeded: () => void): { stop(): void } {
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
