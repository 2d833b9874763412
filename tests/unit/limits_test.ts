import assert from "node:assert/strict";
import { ConcurrencyLimiter } from "../../src/limits.ts";

Deno.test("ConcurrencyLimiter runs at most N tasks and the rest in arrival order", async () => {
  const limiter = new ConcurrencyLimiter(2);
  const order: number[] = [];
  let running = 0;
  let peak = 0;
  await Promise.all([1, 2, 3, 4, 5].map(async (n) => {
    const release = await limiter.acquire();
    running++;
    peak = Math.max(peak, running);
    order.push(n);
    await new Promise((resolve) => setTimeout(resolve, 5));
    running--;
    release();
  }));
  assert.equal(peak, 2);
  assert.deepEqual(order, [1, 2, 3, 4, 5]);
});

Deno.test("ConcurrencyLimiter drops a waiter whose signal aborts, keeping its slot for others", async () => {
  const limiter = new ConcurrencyLimiter(1);
  const first = await limiter.acquire();
  const controller = new AbortController();
  const abandoned = limiter.acquire(controller.signal);
  const next = limiter.acquire();
  assert.equal(limiter.queued, 2);
  controller.abort(new Error("client went away"));
  await assert.rejects(abandoned, /client went away/);
  assert.equal(limiter.queued, 1);
  first();
  const release = await next;
  release();
  release();
  const again = await limiter.acquire();
  again();
});

Deno.test("ConcurrencyLimiter rejects at once for an aborted signal and a bad capacity", async () => {
  const limiter = new ConcurrencyLimiter(1);
  await assert.rejects(async () => await limiter.acquire(AbortSignal.abort(new Error("gone"))), /gone/);
  assert.throws(() => new ConcurrencyLimiter(0), RangeError);
});
