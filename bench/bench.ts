/**
 * Measures run_javascript through the real server (stdio, SDK client) against a bare `deno run` of the same
 * code spawned here, in one run, and prints p50/p95/max and the ratio.
 * Run: deno task bench
 */
import { startServer } from "../tests/_helpers.ts";

const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 30);
const CODE = "console.log(1)";

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  return { p50: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] as number };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

const dir = await Deno.makeTempDir();
const file = `${dir}/bench.ts`;
await Deno.writeTextFile(file, CODE);
const bare = () =>
  new Deno.Command(Deno.execPath(), { args: ["run", "--no-config", file], stdout: "null" }).output();

const server = await startServer();
try {
  for (let i = 0; i < 3; i++) {
    await server.js(CODE);
    await bare();
  }
  const ours: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    ours.push(await time(() => server.js(CODE)));
    baseline.push(await time(bare));
  }
  const rows = { "run_javascript (MCP round trip)": stats(ours), "bare deno run": stats(baseline) };
  const ratio = rows["run_javascript (MCP round trip)"].p50 / rows["bare deno run"].p50;
  console.log(`rounds: ${ROUNDS}`);
  console.log("scenario".padEnd(34), "p50 ms".padStart(8), "p95 ms".padStart(8), "max ms".padStart(8));
  for (const [name, s] of Object.entries(rows)) {
    console.log(name.padEnd(34), ...[s.p50, s.p95, s.max].map((v) => v.toFixed(1).padStart(8)));
  }
  console.log(`ratio p50 ours/bare: ${ratio.toFixed(2)}`);
  await Deno.writeTextFile(
    new URL("./results.json", import.meta.url),
    JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, rows, ratio }, null, 2) + "\n",
  );
} finally {
  await server.close();
  await Deno.remove(dir, { recursive: true });
}
