/**
 * `deno task bench`: measures the real server (stdio, SDK client, as users run it) against plain baselines
 * in the same run, prints one table with p50/p95/max, the baseline and the ratio against each target, and
 * writes the same numbers to bench/results.json. See bench/README.md.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { serverEnv, startServer, type TestServer } from "../tests/_helpers.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const SPACING_MS = 100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Stats {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  return { n: sorted.length, p50: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] as number };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function sample(rounds: number, fn: () => Promise<unknown>, spacing = SPACING_MS): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    out.push(await timed(fn));
    await sleep(spacing);
  }
  return out;
}

/** Resident memory of a process and all its descendants, in MiB (Linux). */
function treeRssMiB(root: number): number {
  const children = new Map<number, number[]>();
  const rss = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const pid = Number(entry.name);
      const ppid = Number(fields[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
      rss.set(pid, Number(fields[21]) * 4096);
    } catch {
      // Gone.
    }
  }
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop() as number;
    total += rss.get(pid) ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total / 1024 / 1024;
}

function watchPeak(pid: number): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => peak = Math.max(peak, treeRssMiB(pid)), 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, treeRssMiB(pid));
    },
  };
}

async function connectInProcessBaseline(): Promise<{ client: Client; close(): Promise<void> }> {
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: ["run", "-A", here("./inprocess_python_server.ts")],
    env: serverEnv(),
    stderr: "ignore",
  });
  const client = new Client({ name: "bench", version: "0" });
  await client.connect(transport);
  return { client, close: () => client.close() };
}

const rows: Array<
  { scenario: string; ours: Stats; baseline?: Stats; ratio?: number; target: string; met?: boolean }
> = [];
const notes: Record<string, unknown> = {};

/** Adds a table row comparing `ours` with `baseline`; `met` judges the ratio (and our stats). */
function addRow(
  scenario: string,
  oursSamples: number[],
  baselineSamples: number[],
  target: string,
  met: (ratio: number, ours: Stats) => boolean,
): void {
  const ours = stats(oursSamples), baseline = stats(baselineSamples);
  const ratio = ours.p50 / baseline.p50;
  rows.push({ scenario, ours, baseline, ratio, target, met: met(ratio, ours) });
}
const log = (text: string) => console.error(text);

// The snapshot and caches are built by a first start, as after an install; that start is not measured.
log("warming up (first start builds the Python snapshot)…");
{
  const first = await startServer();
  await first.py("print(1)");
  await first.js("console.log(1)");
  await first.close();
}

// 1. Python cold start: server spawn → first run_python result of print(1).
log("python cold start…");
const cold = await sample(5, async () => {
  const server = await startServer();
  const { result } = await server.py("print(1)");
  if (result.stdout !== "1\n") throw new Error(`cold start gave ${JSON.stringify(result)}`);
  await server.close();
}, 500);
const plain = await sample(3, async () => {
  const { success } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", here("./plain_pyodide.ts")],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!success) throw new Error("plain loadPyodide failed");
}, 500);
addRow("python cold start", cold, plain, "≤ 1/7 (0.143) of plain loadPyodide", (r) => r <= 1 / 7);

const server: TestServer = await startServer();
await server.py("print(1)");
await server.js("console.log(1)");
await sleep(1000);
notes.idleRssMiB = Math.round(treeRssMiB(server.pid));
const peak = watchPeak(server.pid);

// 2. Restart after a killed Python process.
log("python restart…");
const restarts = await sample(5, async () => {
  const { result } = await server.py("print(1)", { reset: true });
  if (result.stdout !== "1\n") throw new Error(`restart gave ${JSON.stringify(result)}`);
}, 300);
addRow("python restart (reset)", restarts, plain, "≤ 1/7 (0.143) of plain loadPyodide", (r) => r <= 1 / 7);

// 3. Warm Python call against an in-process Pyodide behind the same MCP client.
log("python warm calls…");
const warm = await sample(60, () => server.py("1+1"), 5);
const inProcess = await connectInProcessBaseline();
await inProcess.client.callTool({ name: "run_python", arguments: { code: "1+1" } });
const warmBaseline = await sample(
  60,
  () => inProcess.client.callTool({ name: "run_python", arguments: { code: "1+1" } }),
  5,
);
await inProcess.close();
addRow(
  "python warm call (1+1)",
  warm,
  warmBaseline,
  "p50 ≤ 5 ms and ≤ 1.5× in-process Pyodide",
  (r, o) => o.p50 <= 5 && r <= 1.5,
);

// 4. JavaScript call against a bare `deno run` of the same code.
log("javascript calls…");
const dir = await Deno.makeTempDir();
await Deno.writeTextFile(`${dir}/one.ts`, "console.log(1)");
const jsCalls = await sample(40, () => server.js("console.log(1)"));
const bare = await sample(
  40,
  () =>
    new Deno.Command(Deno.execPath(), { args: ["run", "--no-config", `${dir}/one.ts`], stdout: "null" })
      .output(),
);
await Deno.remove(dir, { recursive: true });
addRow("javascript call (console.log(1))", jsCalls, bare, "≤ 0.4× bare deno run", (r) => r <= 0.4);

// 5. Throughput: 16 concurrent JS calls; 4 concurrent Python sessions.
log("throughput…");
const jsWall = await timed(async () => {
  const results = await Promise.all(Array.from({ length: 16 }, (_, i) => server.js(`console.log(${i} * 2)`)));
  results.forEach(({ result }, i) => {
    if (result.stdout !== `${i * 2}\n`) throw new Error(`JS call ${i} gave ${JSON.stringify(result)}`);
  });
});
const sessions = await Promise.all([0, 1, 2, 3].map(() => startServer()));
await Promise.all(sessions.map((s) => s.py("0")));
const pyWall = await timed(async () => {
  const results = await Promise.all(sessions.map((s, i) => s.py(`sum(range(${i} * 1000))`)));
  results.forEach(({ result }, i) => {
    const expected = String((i * 1000) * (i * 1000 - 1) / 2);
    if (result.result !== expected) throw new Error(`Python session ${i} gave ${JSON.stringify(result)}`);
  });
});
await Promise.all(sessions.map((s) => s.close()));
notes.throughput = { js16ConcurrentWallMs: Math.round(jsWall), python4SessionsWallMs: Math.round(pyWall) };
notes.peakRssMiB = Math.round(peak.stop());
await server.close();

// The table.
const fmt = (n: number) => n.toFixed(1).padStart(8);
const lines = [
  `${"scenario".padEnd(34)}${"p50".padStart(8)}${"p95".padStart(8)}${
    "max".padStart(8)
  }   baseline p50  ratio   target`,
];
for (const row of rows) {
  lines.push(
    `${row.scenario.padEnd(34)}${fmt(row.ours.p50)}${fmt(row.ours.p95)}${fmt(row.ours.max)}   ${
      row.baseline ? fmt(row.baseline.p50) : "       -"
    }     ${row.ratio?.toFixed(3) ?? "-"}   ${row.target} ${row.met ? "✓ met" : "✗ not met"}`,
  );
}
lines.push(
  `throughput: 16 concurrent JS calls ${
    notes.throughput && (notes.throughput as { js16ConcurrentWallMs: number }).js16ConcurrentWallMs
  } ms wall; ` +
    `4 concurrent Python sessions ${
      (notes.throughput as { python4SessionsWallMs: number }).python4SessionsWallMs
    } ms wall (all correct)`,
);
lines.push(
  `memory: server tree idle (Python warm) ${notes.idleRssMiB} MiB (target ≤ 300 MiB ${
    (notes.idleRssMiB as number) <= 300 ? "✓ met" : "✗ not met"
  }), peak ${notes.peakRssMiB} MiB`,
);
console.log(
  `times in ms; ${
    new Date().toISOString()
  }; ${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
);
console.log(lines.join("\n"));
await Deno.writeTextFile(
  here("./results.json"),
  JSON.stringify({ date: new Date().toISOString(), deno: Deno.version.deno, rows, ...notes }, null, 2) + "\n",
);
