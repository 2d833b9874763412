/**
 * A counting semaphore with a FIFO queue, so at most N runs execute at once and the rest wait in order.
 *
 * @module
 */

/**
 * Limits how many tasks run at once.
 *
 * @example
 * ```ts
 * const limiter = new ConcurrencyLimiter(1);
 * const release = await limiter.acquire(AbortSignal.timeout(1000));
 * try {
 *   // At most one task is here at a time.
 * } finally {
 *   release();
 * }
 * ```
 */
export class ConcurrencyLimiter {
  #free: number;
  #waiting: Array<() => void> = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("capacity must be >= 1");
    this.#free = capacity;
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }

  /** Tasks holding a slot. */
  get running(): number {
    return this.capacity - this.#free;
  }

  /**
   * Waits for a slot and returns the function that gives it back. Rejects with `signal.reason` if the
   * signal aborts while waiting, leaving the queue as it was.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(this.#releaser());
      };
      const onAbort = () => {
        this.#waiting = this.#waiting.filter((waiter) => waiter !== grant);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(grant);
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
