/**
 * `deno task bench`: measures the real server (stdio and Streamable HTTP, SDK client, as users run it)
 * against plain baselines in the same run, prints one table with p50/p95/max, the baseline and the ratio
 * against each target, and writes the same numbers to bench/results.json. See bench/README.md.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { serverEnv, startServer, type TestServer } from "../tests/_helpers.ts";
import { connect, py as httpPy, startHttp, TOKEN } from "../tests/_http.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const SPACING_MS = 100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (text: string) => console.error(text);

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

/** `rounds` calls of `fn` one after another, `spacing` ms apart (0: back to back). */
async function sample(rounds: number, fn: () => Promise<unknown>, spacing = SPACING_MS): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    out.push(await timed(fn));
    if (spacing) await sleep(spacing);
  }
  return out;
}

/** `bursts` times `width` calls of `fn` at once, `spacing` ms apart; each call's own time is a sample. */
async function sampleBursts(
  bursts: number,
  width: number,
  fn: (i: number) => Promise<unknown>,
  spacing = 300,
): Promise<number[]> {
  const out: number[] = [];
  for (let b = 0; b < bursts; b++) {
    out.push(...await Promise.all(Array.from({ length: width }, (_, i) => timed(() => fn(i)))));
    await sleep(spacing);
  }
  return out;
}

/** Memory of a process tree in MiB (Linux): resident, proportional (shared pages split) and private. */
interface TreeMemory {
  rss: number;
  pss: number;
  private: number;
  processes: number;
}

/** `root` and every process below it, each before its children (Linux). */
function treePids(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry.name)]);
    } catch {
      // Gone.
    }
  }
  const pids: number[] = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop() as number;
    pids.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return pids;
}

function treeMemory(root: number): TreeMemory {
  const total: TreeMemory = { rss: 0, pss: 0, private: 0, processes: 0 };
  for (const pid of treePids(root)) {
    try {
      const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
      const kib = (key: string) => Number(rollup.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0);
      total.rss += kib("Rss") / 1024;
      total.pss += kib("Pss") / 1024;
      total.private += (kib("Private_Clean") + kib("Private_Dirty")) / 1024;
      total.processes++;
    } catch {
      // Gone.
    }
  }
  return total;
}

/** Length of a clock tick of /proc/<pid>/stat in ms (USER_HZ, 100 on Linux everywhere in practice). */
const TICK_MS = 1000 / (Number(
  new TextDecoder().decode(
    new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).outputSync().stdout,
  ),
) || 100);

/**
 * CPU time (user + system) in ms of a process itself and of its children it has reaped (their whole trees),
 * from fields 14–17 of /proc/<pid>/stat.
 */
function cpuTimes(pid: number | "self"): { own: number; reaped: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which may hold spaces: index 0 is field 3.
  const field = (n: number) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[n - 3]);
  return { own: (field(14) + field(15)) * TICK_MS, reaped: (field(16) + field(17)) * TICK_MS };
}

/**
 * CPU time in ms used by a process tree so far: every live process's own and reaped children's time. A
 * launcher started before a measurement and used in it counts only for what it used since; one still waiting
 * at the end counts for what it used so far (reaped-only counting would get both wrong).
 */
function treeCpu(root: number): number {
  let total = 0;
  for (const pid of treePids(root)) {
    try {
      const { own, reaped } = cpuTimes(pid);
      total += own + reaped;
    } catch {
      // Gone (and reaped into its parent's time, or about to be).
    }
  }
  return total;
}

function watchPeak(pid: number): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => peak = Math.max(peak, treeMemory(pid).rss), 100);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, treeMemory(pid).rss);
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

/** A plain `deno run -A` of one of the bench's scripts, its output ignored. */
function benchScript(file: string, ...args: string[]): () => Promise<unknown> {
  return async () => {
    const { success } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", here(file), ...args],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!success) throw new Error(`${file} failed`);
  };
}

/**
 * The newest memory snapshot in the package cache the servers use (`<cache>/snapshots/<key>.bin`, the
 * default cache being `<DENO_DIR>/code-runner-mcp/packages`, as in src/python/interpreters.ts).
 */
function newestSnapshot(): string {
  const denoDir = Deno.env.get("DENO_DIR") ??
    new URL(import.meta.resolve("pyodide")).pathname.match(/^(.*)\/npm\/[^/]+\/pyodide\/[^/]+\/$/)?.[1];
  const cache = benchEnv.CODE_RUNNER_PACKAGE_CACHE_DIR?.trim() || `${denoDir}/code-runner-mcp/packages`;
  const found = [...Deno.readDirSync(`${cache}/snapshots`)]
    .filter((entry) => entry.isFile && entry.name.endsWith(".bin"))
    .map((entry) => ({
      path: `${cache}/snapshots/${entry.name}`,
      ...Deno.statSync(`${cache}/snapshots/${entry.name}`),
    }))
    .sort((a, b) => (b.mtime?.getTime() ?? 0) - (a.mtime?.getTime() ?? 0));
  if (!found[0]) throw new Error(`no snapshot in ${cache}/snapshots`);
  return found[0].path;
}

/** A bare `deno run` of a one-line file, as a user without this server would run it. */
function bareDenoRun(file: string): () => Promise<unknown> {
  return async () => {
    const { success } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", file],
      stdout: "null",
    }).output();
    if (!success) throw new Error("bare deno run failed");
  };
}

interface Row {
  scenario: string;
  ours: Stats;
  baseline: Stats;
  ratio: number;
  target: string;
  met: boolean;
}
const rows: Row[] = [];
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

/**
 * Settings passed on to every server the bench starts: a package cache (and snapshot) of its own, and a temp
 * directory of its own, apart from other checkouts testing on the same machine.
 */
const benchEnv: Record<string, string> = {};
for (const name of ["CODE_RUNNER_PACKAGE_CACHE_DIR", "TMPDIR"]) {
  const value = Deno.env.get(name);
  if (value !== undefined) benchEnv[name] = value;
}
const loadAverage = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
notes.loadAverageAtStart = loadAverage();

// The snapshot and caches are built by a first start, as after an install; that start is not measured.
log("warming up (first start builds the Python snapshot)…");
{
  const first = await startServer(benchEnv);
  await first.py("print(1)");
  await first.js("console.log(1)");
  await first.close();
}

// 1. Python cold start: server spawn → first run_python result of print(1).
log("python cold start…");
const cold = await sample(5, async () => {
  const server = await startServer(benchEnv);
  const { result } = await server.py("print(1)");
  if (result.stdout !== "1\n") throw new Error(`cold start gave ${JSON.stringify(result)}`);
  await server.close();
}, 500);
const plain = await sample(3, benchScript("./plain_pyodide.ts"), 500);
addRow("python cold start", cold, plain, "≤ 1/7 (0.143) of plain loadPyodide", (r) => r <= 1 / 7);
// The floor of a cold start with one process per session: a plain process booting from our snapshot.
const snapshotPath = newestSnapshot();
const snapshotBoot = stats(await sample(3, benchScript("./snapshot_pyodide.ts", snapshotPath), 500));
notes.pythonColdStartFloor = {
  snapshot: snapshotPath,
  ...snapshotBoot,
  ratioToPlain: snapshotBoot.p50 / stats(plain).p50,
};

const server: TestServer = await startServer(benchEnv);
await server.py("print(1)");
await server.js("console.log(1)");
// Long enough for the Python host's garbage collection when idle.
await sleep(3000);
const idle = treeMemory(server.pid);
notes.idleTree = idle;
const peak = watchPeak(server.pid);

// 2. Restart after a killed Python process.
log("python restart…");
const restarts = await sample(5, async () => {
  const { result } = await server.py("print(1)", { reset: true });
  if (result.stdout !== "1\n") throw new Error(`restart gave ${JSON.stringify(result)}`);
}, 300);
addRow("python restart (reset)", restarts, plain, "≤ 1/7 (0.143) of plain loadPyodide", (r) => r <= 1 / 7);

// 3. Warm Python call; an in-process Pyodide behind the same MCP client is context, not a target.
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
  "p50 ≤ 3 ms (baseline: in-process)",
  (_r, o) => o.p50 <= 3,
);

// 4. JavaScript calls against bare `deno run` processes of the same code, called the same way.
log("javascript calls…");
const dir = await Deno.makeTempDir();
const oneFile = `${dir}/one.ts`;
await Deno.writeTextFile(oneFile, "console.log(1)");
const bare = bareDenoRun(oneFile);
const js = async (i = 0) => {
  const { result } = await server.js(`console.log(${i} * 2)`);
  if (result.stdout !== `${i * 2}\n`) throw new Error(`JS call gave ${JSON.stringify(result)}`);
};
await bare();
addRow(
  "javascript, calls 100 ms apart",
  await sample(40, () => js()),
  await sample(40, bare),
  "≤ 0.4× bare deno run",
  (r) => r <= 0.4,
);
await sleep(1000);
// CPU per call, ours (the server's whole tree) and the bare runs' (children this process reaped).
const serverBefore = cpuTimes(server.pid), treeBefore = treeCpu(server.pid);
const backToBack = await sample(40, () => js(), 0);
const serverAfter = cpuTimes(server.pid), treeAfter = treeCpu(server.pid);
const bareBefore = cpuTimes("self").reaped;
const bareBackToBack = await sample(40, bare, 0);
const bareCpu = (cpuTimes("self").reaped - bareBefore) / 40;
addRow("javascript, back to back", backToBack, bareBackToBack, "≤ 0.4× bare deno run", (r) => r <= 0.4);
const cores = navigator.hardwareConcurrency;
notes.javascriptCpuPerCall = {
  oursMs: (treeAfter - treeBefore) / 40,
  // For comparison: the server's own time and its reaped launchers' only (misses launchers still alive).
  oursServerAndReapedMs: (serverAfter.own + serverAfter.reaped - serverBefore.own - serverBefore.reaped) / 40,
  bareDenoRunMs: bareCpu,
  cores,
  // One process per call costs at least a Deno start's CPU; all cores busy, calls can come no faster.
  floorMs: bareCpu / cores,
  floorRatio: bareCpu / cores / stats(bareBackToBack).p50,
  oursFloorRatio: (treeAfter - treeBefore) / 40 / cores / stats(bareBackToBack).p50,
};
await sleep(1000);
addRow(
  "javascript, 4 in flight (per call)",
  await sampleBursts(10, 4, js),
  await sampleBursts(10, 4, bare),
  "≤ 0.4× bare deno run ×4",
  (r) => r <= 0.4,
);
await sleep(1000);

// 5. Throughput: 16 JavaScript calls at once against 16 bare processes started at once (wall time).
log("throughput…");
const sixteen = (fn: (i: number) => Promise<unknown>) =>
  sample(5, () => Promise.all(Array.from({ length: 16 }, (_, i) => fn(i))), 500);
addRow(
  "javascript, 16 at once (wall)",
  await sixteen(js),
  await sixteen(bare),
  "≤ 0.6× 16 bare deno runs",
  (r) => r <= 0.6,
);
await Deno.remove(dir, { recursive: true });
notes.peakTreeRssMiB = Math.round(peak.stop());
await server.close();

// 6. Memory per session: 1, 4 and 8 HTTP sessions, each with an interpreter that ran Python.
log("memory per HTTP session…");
const http = await startHttp({ ...benchEnv, CODE_RUNNER_HTTP_TOKEN: TOKEN });
const perSession: Array<{ sessions: number } & TreeMemory> = [];
try {
  if (!http.url) throw new Error(`the HTTP server did not start: ${http.text}`);
  const url = http.url;
  const clients: Client[] = [];
  for (const count of [1, 4, 8]) {
    while (clients.length < count) {
      const client = await connect(url);
      const { result } = await httpPy(client, "print(1)");
      if (result.stdout !== "1\n") throw new Error(`HTTP session gave ${JSON.stringify(result)}`);
      clients.push(client);
    }
    // Long enough for every host's garbage collection when idle.
    await sleep(3000);
    perSession.push({ sessions: count, ...treeMemory(http.child.pid) });
  }
  await Promise.all(clients.map((client) => client.close()));
} finally {
  await http.stop();
}
const first = perSession[0] as TreeMemory, last = perSession[perSession.length - 1] as TreeMemory;
const slope = (key: keyof TreeMemory) => (last[key] - first[key]) / (8 - 1);
notes.memoryPerSession = {
  trees: perSession,
  slopeMiB: { rss: slope("rss"), pss: slope("pss"), private: slope("private") },
};

// The floor of a session's memory: one plain Pyodide process that ran print(1), idle 3 s, started plainly.
log("plain idle Pyodide…");
{
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", here("./idle_pyodide.ts")],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!success) throw new Error("idle_pyodide.ts failed");
  notes.plainIdlePyodideMiB = JSON.parse(new TextDecoder().decode(stdout));
}
const plainIdle = notes.plainIdlePyodideMiB as Omit<TreeMemory, "processes">;
notes.loadAverageAtEnd = loadAverage();

// The table.
const fmt = (n: number) => n.toFixed(1).padStart(8);
const mib = (n: number) => `${Math.round(n)}`;
const met = (ok: boolean) => ok ? "✓ met" : "✗ not met";
const lines = [
  `${"scenario".padEnd(36)}${"p50".padStart(8)}${"p95".padStart(8)}${
    "max".padStart(8)
  }  baseline p50  ratio  target`,
];
for (const row of rows) {
  lines.push(
    `${row.scenario.padEnd(36)}${fmt(row.ours.p50)}${fmt(row.ours.p95)}${fmt(row.ours.max)}  ${
      fmt(row.baseline.p50)
    }     ${row.ratio.toFixed(3)}  ${row.target} ${met(row.met)}`,
  );
}
const floor = notes.pythonColdStartFloor as Stats & { ratioToPlain: number };
lines.push(
  `floor, python cold start: a plain deno run booting Pyodide from our snapshot, print(1): p50 ` +
    `${floor.p50.toFixed(1)} ms = ${floor.ratioToPlain.toFixed(3)}× plain loadPyodide (target 0.143×)`,
);
const cpu = notes.javascriptCpuPerCall as Record<string, number>;
lines.push(
  `floor, javascript CPU per call (back to back): ours ${cpu.oursMs?.toFixed(1)} ms, bare deno run ` +
    `${cpu.bareDenoRunMs?.toFixed(1)} ms; on ${cores} cores back to back cannot go below ` +
    `${cpu.bareDenoRunMs?.toFixed(1)}/${cores} = ${cpu.floorMs?.toFixed(1)} ms per call = ` +
    `${cpu.floorRatio?.toFixed(3)}× the bare run's p50 (target 0.4×); at our CPU per call, ` +
    `${cpu.oursFloorRatio?.toFixed(3)}×`,
);
lines.push(
  `memory, idle tree (Python warm): ${mib(idle.rss)} MiB RSS, ${
    mib(idle.pss)
  } MiB PSS in ${idle.processes} ` +
    `processes (target ≤ 250 MiB RSS ${met(idle.rss <= 250)}); peak ${notes.peakTreeRssMiB} MiB RSS`,
);
lines.push(
  `memory, HTTP sessions with Python 1/4/8: ${perSession.map((m) => mib(m.rss)).join("/")} MiB RSS, ` +
    `${perSession.map((m) => mib(m.pss)).join("/")} MiB PSS; each additional session ${mib(slope("rss"))} ` +
    `MiB RSS, ${mib(slope("pss"))} MiB PSS, ${mib(slope("private"))} MiB private ` +
    `(target ≤ 100 MiB: RSS ${met(slope("rss") <= 100)}, PSS ${met(slope("pss") <= 100)})`,
);
lines.push(
  `floor, memory per session: a plain idle Pyodide process (loadPyodide, print(1), 3 s idle): ` +
    `${mib(plainIdle.rss)} MiB RSS, ${mib(plainIdle.pss)} MiB PSS, ${mib(plainIdle.private)} MiB private`,
);
console.log(
  `times in ms; ${new Date().toISOString()}; ${Deno.build.os}/${Deno.build.arch}, ` +
    `${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}; load average ${notes.loadAverageAtStart} ` +
    `at the start, ${notes.loadAverageAtEnd} at the end`,
);
console.log(lines.join("\n"));
await Deno.writeTextFile(
  here("./results.json"),
  JSON.stringify({ date: new Date().toISOString(), deno: Deno.version.deno, rows, ...notes }, null, 2) + "\n",
);
