/**
 * A pool of launcher processes started ahead of need, each waiting in its own fresh working directory, sized
 * to demand. A process serves exactly one run and is then gone, so no state crosses runs.
 *
 * @module
 */
import type { Child } from "../subprocess.ts";

/** A started launcher and its private working directory. */
export interface ReadyLauncher {
  child: Child;
  workDir: string;
  /** How the launcher ends its output when its run is over (see `SpawnOptions.endMarker`); sent on stdin. */
  endMarker: Uint8Array;
}

/** Options of {@linkcode LauncherPool}. */
export interface LauncherPoolOptions {
  /** How many launchers wait while calls are rare. */
  min: number;
  /** The most that wait: the concurrency cap, since more could not run at once. */
  max: number;
  /**
   * About how long starting a launcher takes: calls closer together than this come faster than one launcher
   * refills the pool, and as many launchers as there were calls in such a window are kept waiting.
   */
  refillMs: number;
  /** After this long without a call, the pool is back to `min` waiting launchers. */
  shrinkMs: number;
  /** After this long without a call, the waiting launchers are stopped until the next call. */
  idleMs: number;
  /** Starts one launcher. */
  start: () => Promise<ReadyLauncher>;
  /** Disposes of a launcher that will not be used. */
  discard: (launcher: ReadyLauncher) => Promise<void>;
}

/**
 * Hands out ready launchers and refills itself in the background. It keeps `min` launchers waiting, grows up
 * to `max` while calls come faster than a launcher starts (back to back, or several at once), and shrinks
 * when calls stop.
 *
 * @example
 * ```ts
 * async function example(start: () => Promise<ReadyLauncher>, discard: (l: ReadyLauncher) => Promise<void>) {
 *   const pool = new LauncherPool({ min: 1, max: 4, refillMs: 100, shrinkMs: 30_000, idleMs: 300_000, start, discard });
 *   pool.fill();
 *   const { child, workDir } = await pool.take();
 *   // … the run; then, once its answer is on its way:
 *   pool.fill();
 * }
 * ```
 */
export class LauncherPool {
  #ready: ReadyLauncher[] = [];
  #starting = 0;
  #closed = false;
  /** How many launchers should wait now, from `min` to `max`. */
  #target: number;
  /** When calls took a launcher, within the last `refillMs`. */
  #recentTakes: number[] = [];
  #shrinkTimer: ReturnType<typeof setTimeout> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly options: LauncherPoolOptions) {
    this.#target = options.min;
  }

  /** Launchers waiting now. */
  get waiting(): number {
    return this.#ready.length;
  }

  /** How many launchers the pool keeps waiting now. */
  get target(): number {
    return this.#target;
  }

  /** A launcher for one run: a waiting one that is still alive, else a new one. */
  async take(): Promise<ReadyLauncher> {
    if (this.#closed) throw new Error("the launcher pool is closed");
    this.#noteDemand();
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

  /** Starts launchers until the target number are waiting or starting. */
  fill(): void {
    while (!this.#closed && this.#ready.length + this.#starting < this.#target) {
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
    clearTimeout(this.#shrinkTimer);
    clearTimeout(this.#idleTimer);
    await this.#drain(0);
  }

  /** Grows the target to the number of calls within `refillMs`, and arms the timers that shrink it again. */
  #noteDemand(): void {
    const now = performance.now();
    this.#recentTakes = this.#recentTakes.filter((at) => now - at < this.options.refillMs);
    this.#recentTakes.push(now);
    this.#target = Math.min(this.options.max, Math.max(this.#target, this.#recentTakes.length));
    clearTimeout(this.#shrinkTimer);
    clearTimeout(this.#idleTimer);
    if (this.#target > this.options.min) {
      this.#shrinkTimer = setTimeout(() => {
        this.#target = this.options.min;
        this.#drain(this.options.min);
      }, this.options.shrinkMs);
      Deno.unrefTimer(this.#shrinkTimer);
    }
    this.#idleTimer = setTimeout(() => this.#drain(0), this.options.idleMs);
    Deno.unrefTimer(this.#idleTimer);
  }

  /** Stops waiting launchers (the newest first) until at most `keep` are left. */
  async #drain(keep: number): Promise<void> {
    const launchers = this.#ready.splice(keep);
    await Promise.all(launchers.map((launcher) => this.options.discard(launcher).catch(() => {})));
  }
}
