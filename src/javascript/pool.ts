/**
 * A small pool of launcher processes started ahead of need, each waiting in its own fresh working
 * directory. A process serves exactly one run and is then gone, so no state crosses runs.
 *
 * @module
 */
import type { Child } from "../subprocess.ts";

/** A started launcher and its private working directory. */
export interface ReadyLauncher {
  child: Child;
  workDir: string;
}

/** Options of {@linkcode LauncherPool}. */
export interface LauncherPoolOptions {
  /** How many launchers wait ready. */
  size: number;
  /** After this long without a run, the waiting launchers are stopped until the next run. */
  idleMs: number;
  /** Starts one launcher. */
  start: () => Promise<ReadyLauncher>;
  /** Disposes of a launcher that will not be used. */
  discard: (launcher: ReadyLauncher) => Promise<void>;
}

/**
 * Hands out ready launchers and refills itself in the background.
 *
 * @example
 * ```ts
 * async function example(start: () => Promise<ReadyLauncher>, discard: (l: ReadyLauncher) => Promise<void>) {
 *   const pool = new LauncherPool({ size: 2, idleMs: 60_000, start, discard });
 *   const { child, workDir } = await pool.take();
 * }
 * ```
 */
export class LauncherPool {
  #ready: ReadyLauncher[] = [];
  #starting = 0;
  #closed = false;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly options: LauncherPoolOptions) {}

  /** Launchers waiting now. */
  get waiting(): number {
    return this.#ready.length;
  }

  /** A launcher for one run: a waiting one that is still alive, else a new one. */
  async take(): Promise<ReadyLauncher> {
    if (this.#closed) throw new Error("the launcher pool is closed");
    this.#armIdleTimer();
    let launcher: ReadyLauncher | undefined;
    while ((launcher = this.#ready.shift())) {
      // A launcher killed while it waited (by the OS, by a person) is replaced, not used.
      if (!launcher.child.exited) break;
      this.options.discard(launcher).catch(() => {});
    }
    // Refilling is left to `fill()` after the run: starting a process blocks the event loop for a few
    // milliseconds, which would land on this run's critical path.
    return launcher ?? await this.options.start();
  }

  /** Starts launchers until `size` are waiting or starting. */
  fill(): void {
    while (!this.#closed && this.#ready.length + this.#starting < this.options.size) {
      this.#starting++;
      this.options.start().then(
        (launcher) => {
          if (this.#closed) this.options.discard(launcher).catch(() => {});
          else this.#ready.push(launcher);
        },
        () => {},
      ).finally(() => this.#starting--);
    }
  }

  /** Stops every waiting launcher; `take` fails afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    await this.#drain();
  }

  #armIdleTimer(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.#drain(), this.options.idleMs);
    Deno.unrefTimer(this.#idleTimer);
  }

  async #drain(): Promise<void> {
    const launchers = this.#ready.splice(0);
    await Promise.all(launchers.map((launcher) => this.options.discard(launcher).catch(() => {})));
  }
}
