/**
 * The launcher pool's sizing: one waits while calls are rare, calls close together grow it up to the cap,
 * quiet shrinks it back, and a long quiet empties it. Real processes are covered end to end
 * (tests/e2e/run_javascript_test.ts); here the pool's bookkeeping, with stand-in launchers.
 */
import assert from "node:assert/strict";
import { LauncherPool, type ReadyLauncher } from "../../src/javascript/pool.ts";
import type { Child } from "../../src/subprocess.ts";

/** A pool whose launchers are plain objects, counting what it starts and stops. */
function countingPool(options: { max: number; shrinkMs: number; idleMs: number }) {
  const counts = { started: 0, discarded: 0 };
  const pool = new LauncherPool({
    min: 1,
    refillMs: 10_000,
    ...options,
    start: () => {
      counts.started++;
      const child = { exited: false } as unknown as Child;
      return Promise.resolve({ child, workDir: `/w/${counts.started}`, endMarker: new Uint8Array() });
    },
    discard: () => {
      counts.discarded++;
      return Promise.resolve();
    },
  });
  return { pool, counts };
}

async function settled(pool: LauncherPool, waiting: number): Promise<void> {
  for (let i = 0; i < 1000 && pool.waiting !== waiting; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(pool.waiting, waiting);
}

Deno.test("the pool grows with calls close together, up to the cap, and shrinks when they stop", async () => {
  const { pool, counts } = countingPool({ max: 3, shrinkMs: 1000, idleMs: 60_000 });
  try {
    pool.fill();
    await settled(pool, 1);
    assert.equal(pool.target, 1);
    // Five calls in one refill window: the pool aims for the cap, no more.
    const taken: ReadyLauncher[] = [];
    for (let i = 0; i < 5; i++) taken.push(await pool.take());
    assert.equal(
      new Set(taken.map((launcher) => launcher.workDir)).size,
      5,
      "each call gets its own launcher",
    );
    assert.equal(pool.target, 3);
    pool.fill();
    await settled(pool, 3);
    // Quiet: back to one waiting launcher, the others stopped.
    await settled(pool, 1);
    assert.equal(pool.target, 1);
    assert.equal(counts.discarded, 2);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.take(), /closed/);
});

Deno.test("a long quiet stops every waiting launcher; the next call starts one", async () => {
  const { pool, counts } = countingPool({ max: 2, shrinkMs: 60_000, idleMs: 200 });
  try {
    pool.fill();
    await settled(pool, 1);
    await pool.take();
    pool.fill();
    await settled(pool, 1);
    await settled(pool, 0);
    const before = counts.started;
    const launcher = await pool.take();
    assert.equal(counts.started, before + 1);
    assert.ok(launcher.workDir);
  } finally {
    await pool.close();
  }
});
