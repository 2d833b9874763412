/**
 * One MCP session's Python: a long-lived host process whose state persists between calls, a queue so calls
 * run one at a time, and one state machine for a call's life:
 *
 * ```text
 * idle ─run─▶ executing ◀─▶ installing          (the host says which; each phase has its own time limit)
 *               │ stop (timeout or the client's cancel)
 *               ▼
 *          interrupting ─KeyboardInterrupt handled─▶ idle
 *               └─ not within INTERRUPT_GRACE_MS ─▶ killed; a new host boots (restarting) ─▶ idle
 * ```
 *
 * Installing cannot be interrupted (a download is in flight), so a stop while installing kills the host.
 *
 * @module
 */
import { type CodeMode, MAX_REQUESTS_IN_FLIGHT, MAX_REQUESTS_PER_RUN, RequestGate } from "../code_mode.ts";
import { type McpResultMessage, refuseRequest } from "../code_mode_protocol.ts";
import { ConcurrencyLimiter } from "../limits.ts";
import type { Logger } from "../log.ts";
import type { Runner, RunOptions } from "../runner.ts";
import { HostExited, type HostProcess } from "./host_process.ts";
import {
  describe,
  failure,
  fromDone,
  fromExit,
  type PythonRunResult,
  type StopReason,
} from "./python_result.ts";

export type { PythonRunResult } from "./python_result.ts";

const STATE_GONE_BEFORE = "This session's Python process had been stopped since the last call (it was idle " +
  "and the server needed room for other sessions, or it exited), so this call ran in a fresh interpreter: " +
  "variables, imports and files from earlier calls are gone.";

/** How long Python gets to stop after a KeyboardInterrupt before its process is killed. */
export const INTERRUPT_GRACE_MS = 2000;

/** One `run_python` call. */
export interface PythonCall {
  code: string;
  packages: readonly string[];
  timeoutMs: number;
  /** Start from a fresh interpreter. */
  reset: boolean;
}

/** Settings of a session. */
export interface PythonSessionOptions {
  /** Starts a host (already booted); `replacing` when this session had one before. */
  startHost: (replacing: boolean) => Promise<HostProcess>;
  installTimeoutMs: number;
  memoryLimitMb: number;
  diskLimitMb: number;
  /** Where diagnostics go. */
  logger?: Logger;
  /** Called once when the session is closed. */
  onClose?: () => void;
  /** The operator's upstream MCP servers, which calls may use (`from code_runner import mcp`). */
  codeMode?: CodeMode | null;
}

/** Where a session is in the life of its current call. */
export type SessionState = "idle" | "installing" | "executing" | "interrupting" | "restarting" | "closed";

/**
 * A Python session.
 *
 * @example
 * ```ts
 * async function example(startHost: PythonSessionOptions["startHost"]) {
 *   const session = new PythonSession({ startHost, installTimeoutMs: 120000, memoryLimitMb: 1024, diskLimitMb: 1024 });
 *   session.warm();
 *   const result = await session.run({ code: "1 + 1", packages: [], timeoutMs: 5000, reset: false });
 *   await session.close();
 *   return result.result; // "2"
 * }
 * ```
 */
export class PythonSession implements Runner<PythonCall, PythonRunResult> {
  #state: SessionState = "idle";
  #host: Promise<HostProcess> | null = null;
  /** When a call last started or ended here, for least-recently-used reclaiming. */
  #lastUsed = performance.now();
  #hadHost = false;
  /**
   * The interpreter whose state the client last saw (null: the client knows of no state). A result from any
   * other interpreter says `stateReset`, however the change came about.
   */
  #knownHost: HostProcess | null = null;
  #queue = new ConcurrencyLimiter(1);
  #nextCallId = 1;
  #closing: Promise<void> | undefined;

  constructor(readonly options: PythonSessionOptions) {}

  /** Where the session is now. */
  get state(): SessionState {
    return this.#state;
  }

  /** When a call last started or ended (`performance.now()`). */
  get lastUsed(): number {
    return this.#lastUsed;
  }

  /** Whether the session holds an interpreter (booting or booted). */
  get hasInterpreter(): boolean {
    return this.#host !== null;
  }

  /**
   * Stops the interpreter of an idle session to make room for another; the session gets a new one on its
   * next call, whose result says `stateReset`. Answers whether there was one to stop.
   */
  async reclaim(): Promise<boolean> {
    if (this.#state !== "idle" || !this.#host) return false;
    const slot = this.#host;
    this.#host = null;
    const host = await slot.catch(() => null);
    if (!host) return false;
    host.kill();
    await host.exited;
    return true;
  }

  /** Starts the interpreter ahead of the first call. */
  warm(): void {
    this.#ensureHost().catch(() => {});
  }

  /** Kills the interpreter; the session cannot be used afterwards. Safe to call twice. */
  close(): Promise<void> {
    return this.#closing ??= (async () => {
      this.#state = "closed";
      this.options.onClose?.();
      const slot = this.#host;
      this.#host = null;
      const host = await slot?.catch(() => null);
      host?.kill();
      // Waiting for the exit lets the host's private storage be removed before the server exits.
      await host?.exited;
    })();
  }

  /** Runs one call; never throws for anything the code does. */
  async run(call: PythonCall, options: RunOptions = {}): Promise<PythonRunResult> {
    const clientSignal = options.signal ?? new AbortController().signal;
    let release: () => void;
    try {
      release = await this.#queue.acquire(clientSignal);
    } catch {
      return failure("cancelled", "Cancelled by the client before the run started.", { cancelled: true });
    }
    const started = performance.now();
    this.#lastUsed = started;
    try {
      if (call.reset) await this.#restart();
      let host: HostProcess;
      const slot = this.#ensureHost();
      try {
        host = await slot;
      } catch (error) {
        if (this.#host === slot) this.#host = null;
        const stateReset = this.#knownHost !== null;
        this.#knownHost = null;
        return failure("crashed", `Python could not start: ${describe(error)}`, { stateReset });
      }
      const result = await this.#execute(host, call, clientSignal, options);
      result.durationMs = Math.round(performance.now() - started);
      const died = result.stateReset;
      result.stateReset = died || call.reset || (this.#knownHost !== null && this.#knownHost !== host);
      // A cancelled call's result never reaches the client, so what it knows does not change.
      if (!clientSignal.aborted) this.#knownHost = died ? null : host;
      if (result.stateReset && !died && !call.reset) result.message ??= STATE_GONE_BEFORE;
      return result;
    } finally {
      if (this.#state !== "closed") this.#state = "idle";
      this.#lastUsed = performance.now();
      release();
    }
  }

  /** Runs a call on `host`, stopping it on the call's time limits or the client's cancel. */
  async #execute(
    host: HostProcess,
    call: PythonCall,
    clientSignal: AbortSignal,
    { onProgress, onOutput }: RunOptions,
  ): Promise<PythonRunResult> {
    const stop = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const limitPhase = (ms: number, reason: StopReason) => {
      clearTimeout(timer);
      if (!stop.signal.aborted) timer = setTimeout(() => stop.abort(reason), ms);
    };
    stop.signal.addEventListener("abort", () => {
      if (this.#state === "executing") {
        this.#state = "interrupting";
        host.interrupt();
        graceTimer = setTimeout(() => host.kill(), INTERRUPT_GRACE_MS);
      } else {
        // Installing: a download cannot be interrupted, so the host goes.
        host.kill();
      }
    }, { once: true });
    const onCancel = () => stop.abort("cancelled" satisfies StopReason);
    clientSignal.addEventListener("abort", onCancel, { once: true });
    // The server times execution from the start; the host announces an install phase when there is one.
    this.#state = "executing";
    limitPhase(call.timeoutMs, "timeout");
    if (clientSignal.aborted) onCancel();
    const why = () => (stop.signal.aborted ? stop.signal.reason as StopReason : null);
    // Code mode: the call's requests are answered by a view bounded by the call's time limit and stop.
    const { codeMode } = this.options;
    const callEnded = new AbortController();
    let view: ReturnType<CodeMode["forRun"]> | undefined;
    // Security: the call's channel is bounded like a JavaScript run's (requests in flight and in all).
    const gate = new RequestGate();
    const onMcp = codeMode
      ? async (request: unknown) => {
        const release = gate.tryAcquire();
        if (typeof release === "string") return refusedRequest(request, release);
        try {
          view ??= codeMode.forRun(AbortSignal.any([stop.signal, callEnded.signal]), call.timeoutMs);
          return await (await view).handle(request);
        } finally {
          release();
        }
      }
      : undefined;
    try {
      const done = await host.run(
        { callId: this.#nextCallId++, code: call.code, packages: call.packages },
        {
          ...(onProgress ? { onProgress } : {}),
          ...(onOutput ? { onOutput } : {}),
          ...(onMcp ? { onMcp } : {}),
          onInstalling: () => {
            if (stop.signal.aborted) return;
            this.#state = "installing";
            limitPhase(this.options.installTimeoutMs, "install-timeout");
          },
          onExecuting: () => {
            if (stop.signal.aborted) return;
            this.#state = "executing";
            limitPhase(call.timeoutMs, "timeout");
          },
        },
      );
      return fromDone(done, why(), call.timeoutMs);
    } catch (error) {
      if (!(error instanceof HostExited)) throw error;
      return fromExit(error.exit, why(), {
        timeoutMs: call.timeoutMs,
        installTimeoutMs: this.options.installTimeoutMs,
        memoryLimitMb: this.options.memoryLimitMb,
        diskLimitMb: this.options.diskLimitMb,
      });
    } finally {
      callEnded.abort();
      clearTimeout(timer);
      clearTimeout(graceTimer);
      clientSignal.removeEventListener("abort", onCancel);
    }
  }

  #ensureHost(): Promise<HostProcess> {
    if (this.#state === "closed") return Promise.reject(new Error("the session is closed"));
    return this.#host ??= this.#start();
  }

  /** Starts a host in the slot; when it exits while still there, the slot is emptied for the next call. */
  #start(): Promise<HostProcess> {
    const slot = this.options.startHost(this.#hadHost);
    this.#hadHost = true;
    slot.then((host) => {
      host.exited.then((exit) => {
        if (this.#host !== slot) return;
        const busy = this.#state !== "idle";
        this.#host = null;
        // A call that was running reports its own end; only an idle death needs a word.
        if (!busy && !host.stopped && this.#state !== "closed") {
          this.options.logger?.log(
            "warning",
            `an idle Python process exited (${
              exit.signal ?? `code ${exit.code}`
            }); the session's next call gets a new one`,
          );
        }
      });
    }, () => {
      if (this.#host === slot) this.#host = null;
    });
    return slot;
  }

  /** Replaces the interpreter (a `reset`). */
  async #restart(): Promise<void> {
    this.#state = "restarting";
    const slot = this.#host;
    this.#host = null;
    const host = await slot?.catch(() => null);
    if (host) {
      host.kill();
      await host.exited;
    }
  }
}

/** The answer to a code-mode request the call may not send now (too many in flight) or at all (budget spent). */
function refusedRequest(request: unknown, why: "busy" | "spent"): McpResultMessage | null {
  return refuseRequest(
    request,
    "limit_exceeded",
    why === "busy"
      ? `more than ${MAX_REQUESTS_IN_FLIGHT} MCP requests at once; await some before sending more`
      : `this call sent ${MAX_REQUESTS_PER_RUN} requests to its MCP channel, the most a call may send`,
  );
}
