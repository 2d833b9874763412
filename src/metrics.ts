/**
 * What `GET /metrics` reports, in the Prometheus text format (version 0.0.4): counters and histograms that
 * the server adds to as things happen, and gauges read when scraped. No dependency.
 *
 * @module
 */

/** The tools whose runs are counted; any other name a client sends is counted as `other`. */
export const TOOLS = ["run_javascript", "run_python"] as const;

/** Run outcomes: the result statuses, plus `invalid` for calls refused before running (bad arguments). */
export const RUN_STATUSES = ["ok", "error", "timeout", "cancelled", "crashed", "invalid"] as const;

/** Upper bounds of the run duration histogram, in seconds: from a warm call to the longest time limit. */
export const RUN_DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

type Labels = Readonly<Record<string, string>>;

/** A value read when scraped: one number, or one number per label set. */
export type GaugeReading = number | ReadonlyArray<{ labels: Labels; value: number }>;

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
}

interface Counter extends Family {
  type: "counter";
  values: Map<string, { labels: Labels; value: number }>;
}

interface Histogram extends Family {
  type: "histogram";
  buckets: readonly number[];
  values: Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>;
}

interface Gauge extends Family {
  type: "gauge";
  read: () => GaugeReading | Promise<GaugeReading>;
}

/**
 * The server's metrics. Runs, restarts, installs and sessions are recorded as they happen; everything that
 * is a current level (sessions open, processes, cache size) is a gauge read at scrape time.
 *
 * @example
 * ```ts
 * const metrics = new Metrics();
 * metrics.recordRun("run_python", "ok", 12);
 * metrics.gauge("code_runner_http_sessions_open", "MCP sessions open.", () => 3);
 * const text = await metrics.render(); // "# HELP code_runner_runs_total …"
 * ```
 */
export class Metrics {
  readonly #families: Array<Counter | Histogram | Gauge> = [];
  readonly #runs: Counter;
  readonly #durations: Histogram;
  readonly #restarts: Counter;
  readonly #installs: Counter;
  readonly #sessions: Counter;
  readonly #responses: Counter;

  constructor() {
    this.#runs = this.#counter("code_runner_runs_total", "Tool calls answered, by tool and result status.");
    this.#durations = this.#histogram(
      "code_runner_run_duration_seconds",
      "Wall time of tool calls (as reported in the result's durationMs), by tool.",
      RUN_DURATION_BUCKETS,
    );
    this.#restarts = this.#counter(
      "code_runner_python_restarts_total",
      "Python calls after which the session's interpreter had been restarted (reset, timeout, crash).",
    );
    this.#installs = this.#counter(
      "code_runner_python_packages_installed_total",
      "Python packages installed for calls.",
    );
    this.#sessions = this.#counter(
      "code_runner_http_sessions_total",
      "MCP sessions by what happened to them: created, refused_full, refused_draining, expired, closed.",
    );
    this.#responses = this.#counter(
      "code_runner_http_rejected_total",
      "HTTP requests refused before reaching MCP, by status code (401, 403, 404, 406, 413, 415, …).",
    );
    // Known label sets start at zero, so a rate() sees the first event.
    for (const tool of TOOLS) {
      for (const status of RUN_STATUSES) add(this.#runs, { tool, status }, 0);
    }
    add(this.#restarts, {}, 0);
    add(this.#installs, {}, 0);
  }

  /** Counts one answered tool call. Unknown tool names and statuses are folded into `other`. */
  recordRun(tool: string, status: string, durationMs: number): void {
    // Security: tool names come from clients; only known ones become label values, or a client could grow
    // the registry (and every scrape) without bound.
    const labels = {
      tool: (TOOLS as readonly string[]).includes(tool) ? tool : "other",
      status: (RUN_STATUSES as readonly string[]).includes(status) ? status : "other",
    };
    add(this.#runs, labels, 1);
    const seconds = Math.max(0, durationMs) / 1000;
    const key = keyOf({ tool: labels.tool });
    let entry = this.#durations.values.get(key);
    if (!entry) {
      entry = {
        labels: { tool: labels.tool },
        counts: this.#durations.buckets.map(() => 0),
        sum: 0,
        count: 0,
      };
      this.#durations.values.set(key, entry);
    }
    this.#durations.buckets.forEach((bound, i) => {
      if (seconds <= bound) (entry.counts[i] as number)++;
    });
    entry.sum += seconds;
    entry.count++;
  }

  /** Counts a Python call whose interpreter had to be restarted (its state was lost). */
  recordRestart(): void {
    add(this.#restarts, {}, 1);
  }

  /** Counts packages installed for a call. */
  recordInstalls(count: number): void {
    if (count > 0) add(this.#installs, {}, count);
  }

  /** Counts a session event: `created`, `refused_full`, `refused_draining`, `expired`, `evicted` or `closed`. */
  recordSession(
    event: "created" | "refused_full" | "refused_draining" | "expired" | "evicted" | "closed",
  ): void {
    add(this.#sessions, { event }, 1);
  }

  /** Counts a request refused by the HTTP layer itself. */
  recordRejected(status: number): void {
    add(this.#responses, { code: String(status) }, 1);
  }

  /** Registers a gauge whose value is read at every scrape. */
  gauge(name: string, help: string, read: () => GaugeReading | Promise<GaugeReading>): void {
    this.#families.push({ name, help, type: "gauge", read });
  }

  /** The current value of a counter or histogram count with exactly these labels (for tests and logs). */
  value(name: string, labels: Labels = {}): number {
    const family = this.#families.find((f) => f.name === name);
    if (family?.type === "counter") return family.values.get(keyOf(labels))?.value ?? 0;
    if (family?.type === "histogram") return family.values.get(keyOf(labels))?.count ?? 0;
    return 0;
  }

  /** Everything, in the Prometheus text exposition format. A gauge that fails to read is left out. */
  async render(): Promise<string> {
    const lines: string[] = [];
    for (const family of this.#families) {
      const samples: string[] = [];
      if (family.type === "counter") {
        for (const { labels, value } of family.values.values()) {
          samples.push(sample(family.name, labels, value));
        }
      } else if (family.type === "histogram") {
        for (const { labels, counts, sum, count } of family.values.values()) {
          family.buckets.forEach((bound, i) => {
            samples.push(sample(`${family.name}_bucket`, { ...labels, le: String(bound) }, counts[i] ?? 0));
          });
          samples.push(sample(`${family.name}_bucket`, { ...labels, le: "+Inf" }, count));
          samples.push(sample(`${family.name}_sum`, labels, sum));
          samples.push(sample(`${family.name}_count`, labels, count));
        }
      } else {
        let reading: GaugeReading;
        try {
          reading = await family.read();
        } catch {
          continue;
        }
        if (typeof reading === "number") samples.push(sample(family.name, {}, reading));
        else for (const { labels, value } of reading) samples.push(sample(family.name, labels, value));
      }
      lines.push(`# HELP ${family.name} ${family.help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}`);
      lines.push(`# TYPE ${family.name} ${family.type}`);
      lines.push(...samples);
    }
    return `${lines.join("\n")}\n`;
  }

  #counter(name: string, help: string): Counter {
    const family: Counter = { name, help, type: "counter", values: new Map() };
    this.#families.push(family);
    return family;
  }

  #histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    const family: Histogram = { name, help, type: "histogram", buckets, values: new Map() };
    this.#families.push(family);
    return family;
  }
}

/** The media type of {@linkcode Metrics.render}'s output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function add(counter: Counter, labels: Labels, by: number): void {
  const key = keyOf(labels);
  const entry = counter.values.get(key);
  if (entry) entry.value += by;
  else counter.values.set(key, { labels, value: by });
}

function keyOf(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

function sample(name: string, labels: Labels, value: number): string {
  const pairs = Object.entries(labels).map(([key, text]) =>
    `${key}="${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`
  );
  const number = Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN";
  return `${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${number}`;
}

/** How many live children of `parentPid` each kind has, and their resident memory. */
export interface ChildProcessStats {
  count: number;
  residentBytes: number;
}

/**
 * Counts the live child processes of `parentPid` whose command line contains each marker (Linux `/proc`;
 * elsewhere every kind reads zero). Children matching no marker are counted as `other`.
 */
export function childProcessStats(
  parentPid: number,
  markers: Readonly<Record<string, string>>,
): Record<string, ChildProcessStats> {
  const stats: Record<string, ChildProcessStats> = { other: { count: 0, residentBytes: 0 } };
  for (const kind of Object.keys(markers)) stats[kind] = { count: 0, residentBytes: 0 };
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync("/proc");
  } catch {
    return stats;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) !== parentPid || fields[0] === "Z") continue;
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      const kind = Object.entries(markers).find(([, marker]) => cmdline.includes(marker))?.[0] ?? "other";
      const rss = Deno.readTextFileSync(`/proc/${entry.name}/status`).match(/^VmRSS:\s+(\d+) kB/m)?.[1];
      const slot = stats[kind] as ChildProcessStats;
      slot.count++;
      slot.residentBytes += Number(rss ?? 0) * 1024;
    } catch {
      // Gone while we looked.
    }
  }
  return stats;
}

/** Total size in bytes of the files under `dir` (0 when it does not exist). */
export async function directorySize(dir: string): Promise<number> {
  let bytes = 0;
  const walk = async (path: string): Promise<void> => {
    for await (const entry of Deno.readDir(path)) {
      const child = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(child).catch(() => {});
      else if (entry.isFile) bytes += (await Deno.stat(child).catch(() => ({ size: 0 }))).size;
    }
  };
  await walk(dir).catch(() => {});
  return bytes;
}
