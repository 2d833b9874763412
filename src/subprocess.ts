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

/** How to start the child and what to hold it to. */
export interface SpawnOptions {
  /** Program to run. */
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd: string;
  /** Bytes written to the child's stdin, which is then closed; without it stdin is empty. */
  stdin?: Uint8Array;
  /** Cap per stream (stdout, stderr). */
  outputLimitBytes: number;
  /** Kill the group when the child's resident memory exceeds this (Linux only). */
  memoryLimitBytes?: number;
  /** Aborting kills the group: SIGTERM, then SIGKILL after {@linkcode KILL_GRACE_MS}. */
  signal: AbortSignal;
  /** Where the group is registered while it lives. */
  groups: ProcessGroups;
}

/** Everything that happened to a finished child. */
export interface ProcessOutcome {
  /** Exit code; `null` when a signal ended the process. */
  exitCode: number | null;
  /** The signal that ended the process, if any. */
  signal: Deno.Signal | null;
  stdout: CappedText;
  stderr: CappedText;
  durationMs: number;
  /** Whether the memory watchdog killed it. */
  memoryExceeded: boolean;
  /** Whether `signal` was aborted before the child finished. */
  aborted: boolean;
}

/**
 * Runs a child to completion.
 *
 * @example
 * ```ts
 * const outcome = await spawnCapped({
 *   command: Deno.execPath(), args: ["--version"], env: {}, cwd: "/tmp",
 *   outputLimitBytes: 65536, signal: AbortSignal.timeout(5000), groups: new ProcessGroups(),
 * });
 * ```
 */
export async function spawnCapped(options: SpawnOptions): Promise<ProcessOutcome> {
  const started = performance.now();
  const child = new Deno.Command(options.command, {
    args: [...options.args],
    env: options.env,
    clearEnv: true,
    cwd: options.cwd,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    // Own session and process group, so a kill reaches every process the child started.
    detached: true,
  }).spawn();
  const pid = child.pid;
  options.groups.add(pid);

  let aborted = false;
  let memoryExceeded = false;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    killGroup(pid, "SIGTERM");
    graceTimer ??= setTimeout(() => killGroup(pid, "SIGKILL"), KILL_GRACE_MS);
  };
  const onAbort = () => {
    aborted = true;
    stop();
  };
  if (options.signal.aborted) onAbort();
  else options.signal.addEventListener("abort", onAbort, { once: true });

  const watchdog = options.memoryLimitBytes
    ? watchMemory(pid, options.memoryLimitBytes, () => memoryExceeded = true)
    : undefined;

  if (options.stdin) {
    const writer = child.stdin.getWriter();
    // A child that exits without reading its stdin makes this write fail; its outcome tells why.
    writer.write(options.stdin).then(() => writer.close()).catch(() => {});
  }

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
    options.groups.delete(pid);
  }
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
