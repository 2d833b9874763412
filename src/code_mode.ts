/**
 * Code mode's place in the runtime: the operator's upstream MCP servers (read from `CODE_RUNNER_MCP_CONFIG`
 * at start), connected lazily, and a per-run view for each run that may call them. The MCP SDK client is
 * loaded only when a run first calls a tool, so a server without upstreams never loads it.
 *
 * @module
 */
import { CODE_MODE_LIMITS } from "./code_mode_protocol.ts";
import type { Logger } from "./log.ts";
import type { RunUpstreams, Upstreams, UpstreamSummary } from "./upstreams.ts";
import { readUpstreamsConfig, type UpstreamsConfig } from "./upstreams_config.ts";

/**
 * The upstreams of a server.
 *
 * @example
 * ```ts
 * async function example(codeMode: CodeMode, signal: AbortSignal) {
 *   const run = await codeMode.forRun(signal, 30_000);
 *   return await run.handle({ type: "mcp_list", id: 1 });
 * }
 * ```
 */
export class CodeMode {
  readonly #config: UpstreamsConfig;
  #upstreams: Promise<Upstreams> | undefined;
  #closed = false;

  constructor(
    configPath: string,
    readonly options: { logger: Logger; serverEnv: Readonly<Record<string, string | undefined>> },
  ) {
    this.#config = readUpstreamsConfig(configPath);
  }

  /** The configured server names, for tool descriptions. */
  get servers(): string[] {
    return [...this.#config.servers.keys()];
  }

  /** The upstreams without secrets, for `doctor` and the banner. */
  summaries(): Promise<UpstreamSummary[]> {
    return this.#load().then((upstreams) => upstreams.summaries());
  }

  /** A view for one run, bounded by the run's signal and time limit and the per-run limits. */
  async forRun(signal: AbortSignal, timeoutMs: number): Promise<RunUpstreams> {
    return (await this.#load()).forRun({
      signal,
      maxCalls: CODE_MODE_LIMITS.maxCallsPerRun,
      maxResultBytes: CODE_MODE_LIMITS.maxResultBytesPerRun,
      deadline: Date.now() + timeoutMs,
    });
  }

  /** Closes every upstream connection and stops every upstream process. */
  async close(): Promise<void> {
    this.#closed = true;
    await (await this.#upstreams?.catch(() => null))?.close();
  }

  #load(): Promise<Upstreams> {
    if (this.#closed) return Promise.reject(new Error("the server is shutting down"));
    return this.#upstreams ??= import("./upstreams.ts").then(({ Upstreams }) =>
      new Upstreams(this.#config, { logger: this.options.logger, serverEnv: this.options.serverEnv })
    );
  }
}

/** Requests one run may send on its channel, calls, lists and malformed ones alike. */
export const MAX_REQUESTS_PER_RUN = 1000;
/** Requests of one run answered at once; more wait (a socket is not read meanwhile) or are refused. */
export const MAX_REQUESTS_IN_FLIGHT = 8;

/**
 * Bounds what one run's channel may cost the server: requests in flight and requests in all. Security: a
 * run that floods its channel (malformed lines, lists, calls) must not starve other runs of the event loop.
 */
export class RequestGate {
  #inFlight = 0;
  #total = 0;
  #waiting: Array<() => void> = [];

  /** Whether the run has used its whole budget of requests. */
  get spent(): boolean {
    return this.#total >= MAX_REQUESTS_PER_RUN;
  }

  /** A slot for one request, waiting while the run has the most in flight; null once the budget is spent. */
  async acquire(): Promise<(() => void) | null> {
    if (this.spent) return null;
    this.#total++;
    while (this.#inFlight >= MAX_REQUESTS_IN_FLIGHT) {
      await new Promise<void>((wake) => this.#waiting.push(wake));
    }
    return this.#take();
  }

  /** A slot now, or why there is none (for a channel that cannot wait: the Python host's pipe). */
  tryAcquire(): (() => void) | "busy" | "spent" {
    if (this.spent) return "spent";
    if (this.#inFlight >= MAX_REQUESTS_IN_FLIGHT) return "busy";
    this.#total++;
    return this.#take();
  }

  #take(): () => void {
    this.#inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight--;
      this.#waiting.shift()?.();
    };
  }
}
