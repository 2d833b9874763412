/**
 * One MCP session's Python: a long-lived host process whose state persists between calls, a queue so
 * calls run one at a time, time limits for installing and for running, and restarts after a kill.
 *
 * @module
 */
import { ConcurrencyLimiter } from "../limits.ts";
import type { Logger } from "../log.ts";
import { capAttachments, emptyResult, type RunResult } from "../result.ts";
import { type DoneMessage, type HostExit, HostExited, type HostProcess } from "./host_process.ts";

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

/** Options of a call. */
export interface PythonCallOptions {
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

/** Settings of a session. */
export interface PythonSessionOptions {
  /** Starts a host process (already booted). */
  startHost: () => Promise<HostProcess>;
  installTimeoutMs: number;
  memoryLimitMb: number;
  maxTimeoutMs: number;
  /** Where diagnostics go. */
  logger?: Logger;
}

const STATE_LOST = "The Python process was restarted: variables, imports, installed packages and files of " +
  "this session are gone; run what the next call needs again.";

/**
 * A Python session.
 *
 * @example
 * ```ts
 * const session = new PythonSession({ startHost, installTimeoutMs: 120000, memoryLimitMb: 1024, maxTimeoutMs: 300000 });
 * session.warm();
 * const result = await session.run({ code: "1 + 1", packages: [], timeoutMs: 5000, reset: false });
 * ```
 */
export class PythonSession {
  #host: Promise<HostProcess> | null = null;
  /** A booted interpreter kept ready once this session has needed a restart, so the next is instant. */
  #spare: Promise<HostProcess> | null = null;
  #restarted = false;
  #queue = new ConcurrencyLimiter(1);
  #nextCallId = 1;
  #closed = false;

  constructor(readonly options: PythonSessionOptions) {}

  /** Starts the interpreter ahead of the first call. */
  warm(): void {
    this.#ensureHost().catch(() => {});
  }

  /** Kills the interpreter; the session cannot be used afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    const hosts = await Promise.all([this.#host, this.#spare].map((pending) => pending?.catch(() => null)));
    // Waiting for the exits lets each host's private storage be removed before the server exits.
    await Promise.all(hosts.map((host) => {
      host?.kill();
      return host?.exited;
    }));
  }

  /** Runs one call; never throws for anything the code does. */
  async run(call: PythonCall, options: PythonCallOptions = {}): Promise<PythonRunResult> {
    const clientSignal = options.signal ?? new AbortController().signal;
    let release: () => void;
    try {
      release = await this.#queue.acquire(clientSignal);
    } catch {
      return failure("cancelled", "Cancelled by the client before the run started.", { cancelled: true });
    }
    const started = performance.now();
    try {
      let stateReset = false;
      if (call.reset) {
        await this.#restart();
        stateReset = true;
      }
      let host: HostProcess;
      try {
        host = await this.#ensureHost();
      } catch (error) {
        this.#host = null;
        return failure("crashed", `Python could not start: ${describe(error)}`, { stateReset: true });
      }
      const result = await this.#execute(host, call, clientSignal, options.onProgress);
      result.durationMs = Math.round(performance.now() - started);
      result.stateReset = result.stateReset || stateReset;
      if (result.stateReset) this.#restarted = true;
      return result;
    } finally {
      release();
      if (this.#restarted && !this.#spare && !this.#closed) this.#spare = this.#startTracked();
    }
  }

  async #execute(
    host: HostProcess,
    call: PythonCall,
    clientSignal: AbortSignal,
    onProgress?: (message: string) => void,
  ): Promise<PythonRunResult> {
    let why: "install-timeout" | "timeout" | "cancelled" | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    let executing = true;
    const stop = (reason: "timeout" | "cancelled") => {
      why ??= reason;
      host.interrupt();
      graceTimer ??= setTimeout(() => host.kill(), INTERRUPT_GRACE_MS);
    };
    timer = setTimeout(() => stop("timeout"), call.timeoutMs);
    const onAbort = () => executing ? stop("cancelled") : (why = "cancelled", host.kill());
    clientSignal.addEventListener("abort", onAbort, { once: true });
    try {
      const done = await host.run(
        { callId: this.#nextCallId++, code: call.code, packages: call.packages },
        {
          onProgress,
          // Installing has its own limit; a download cannot be interrupted, so it is killed.
          onInstalling: () => {
            executing = false;
            clearTimeout(timer);
            timer = setTimeout(() => {
              why = "install-timeout";
              host.kill();
            }, this.options.installTimeoutMs);
          },
          onExecuting: () => {
            executing = true;
            clearTimeout(timer);
            timer = setTimeout(() => stop("timeout"), call.timeoutMs);
          },
        },
      );
      return fromDone(done, why, call.timeoutMs);
    } catch (error) {
      if (!(error instanceof HostExited)) throw error;
      this.#host = null;
      if (!this.#closed) this.warm();
      return fromExit(error.exit, why, call, this.options);
    } finally {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      clientSignal.removeEventListener("abort", onAbort);
    }
  }

  #ensureHost(): Promise<HostProcess> {
    if (this.#closed) return Promise.reject(new Error("the session is closed"));
    if (!this.#host && this.#spare) {
      this.#host = this.#spare;
      this.#spare = null;
    }
    this.#host ??= this.#startTracked();
    return this.#host;
  }

  /** Starts a host; if it dies while idle (current or spare), its slot is emptied and refilled. */
  #startTracked(): Promise<HostProcess> {
    const starting = this.options.startHost();
    starting.then((host) => {
      host.exited.then((exit) => {
        if ((this.#host !== starting && this.#spare !== starting) || host.stopped) return;
        this.options.logger?.log(
          "warning",
          `an idle Python process exited (${exit.signal ?? exit.code}); replacing it`,
        );
        if (this.#host === starting) this.#host = null;
        if (this.#spare === starting) this.#spare = null;
        if (!this.#closed) this.warm();
      });
    }, () => {
      if (this.#host === starting) this.#host = null;
      if (this.#spare === starting) this.#spare = null;
    });
    return starting;
  }

  async #restart(): Promise<void> {
    const host = await this.#host?.catch(() => null);
    this.#host = null;
    if (host) {
      host.kill();
      await host.exited;
    }
  }
}

/** A Python call's result: the shared shape plus the value of the last expression. */
export interface PythonRunResult extends RunResult {
  /** `repr()` of the last expression's value, if it was not None. */
  result?: string;
  /** The same value as JSON, when it is JSON-able. */
  resultJson?: unknown;
  /** Whether the interpreter was restarted during this call, losing the session's state. */
  stateReset: boolean;
  /** Packages installed for this call. */
  installed?: string[];
}

function fromDone(done: DoneMessage, why: string | null, timeoutMs: number): PythonRunResult {
  const result: PythonRunResult = {
    status: "ok",
    stdout: done.stdout.text,
    stderr: done.stderr.text,
    exitCode: null,
    durationMs: 0,
    timedOut: false,
    cancelled: false,
    truncated: done.stdout.truncated || done.stderr.truncated,
    memoryExceeded: false,
    stateReset: false,
  };
  if (done.installed?.length) result.installed = done.installed;
  if (done.displays?.length) {
    const { kept, note } = capAttachments(
      done.displays.map((d) => ({
        mimeType: d.mimeType,
        ...(d.data !== undefined ? { data: d.data } : { text: d.text ?? "" }),
      })),
    );
    result.attachments = kept;
    if (note) result.message = note;
  }
  if (done.result !== undefined) result.result = done.result;
  if (typeof done.resultJson === "string") {
    try {
      result.resultJson = JSON.parse(done.resultJson);
    } catch {
      // Not JSON after all; the repr stands.
    }
  }
  const error = done.error ?? "";
  const lastLine = error.trim().split("\n").at(-1) ?? "";
  switch (done.outcome) {
    case "ok":
      break;
    case "error":
      result.status = "error";
      result.stderr = joinStreams(result.stderr, error);
      result.message = `Python raised ${lastLine}; the traceback is in stderr. Output printed before it is ` +
        "kept, and so is the session's state.";
      break;
    case "install_error":
      result.status = "error";
      result.message = `Could not install what the code needs, so it did not run. ${error} ` +
        "Use the PyPI name in `packages` (e.g. scikit-learn for sklearn, Pillow for PIL); a package " +
        "needs a pure-Python wheel or a Pyodide build.";
      break;
    case "interrupted":
      if (why === "cancelled") {
        result.status = "cancelled";
        result.cancelled = true;
        result.message = "Cancelled by the client; Python was interrupted. The session's state is kept.";
      } else {
        result.status = "timeout";
        result.timedOut = true;
        result.message = `Timed out after ${timeoutMs} ms and was interrupted with KeyboardInterrupt. ` +
          "The session's state (variables, imports) is kept. Make the code faster or pass a larger timeout_ms.";
      }
      result.stderr = joinStreams(result.stderr, error);
      break;
  }
  return result;
}

function fromExit(
  exit: HostExit,
  why: string | null,
  call: PythonCall,
  options: PythonSessionOptions,
): PythonRunResult {
  const base = { stateReset: true, exitCode: exit.code };
  if (exit.memoryExceeded) {
    return failure(
      "crashed",
      `Killed for exceeding the memory limit (${options.memoryLimitMb} MiB). ${STATE_LOST}`,
      { ...base, memoryExceeded: true },
    );
  }
  if (why === "timeout") {
    return failure(
      "timeout",
      `Timed out after ${call.timeoutMs} ms and did not stop when interrupted (a loop in C code, or code ` +
        `that catches KeyboardInterrupt), so it was killed. ${STATE_LOST}`,
      { ...base, timedOut: true },
    );
  }
  if (why === "install-timeout") {
    return failure(
      "timeout",
      `Installing packages took longer than ${options.installTimeoutMs} ms and was stopped; the code did not ` +
        `run. ${STATE_LOST}`,
      { ...base, timedOut: true },
    );
  }
  if (why === "cancelled") {
    return failure("cancelled", `Cancelled by the client. ${STATE_LOST}`, { ...base, cancelled: true });
  }
  // The first line the host printed that is not a stack frame says what broke, without internals.
  const detail = exit.stderrTail.split("\n").map((line) => line.trim())
    .find((line) => line && !line.startsWith("at ")) ?? "";
  return failure(
    "crashed",
    `The Python process ended unexpectedly (${exit.signal ?? `exit code ${exit.code}`})${
      detail ? `: ${detail}` : ""
    }. ${STATE_LOST}`,
    base,
  );
}

function failure(
  status: RunResult["status"],
  message: string,
  fields: Partial<PythonRunResult> = {},
): PythonRunResult {
  return { ...emptyResult(status, message), stateReset: false, ...fields };
}

function joinStreams(stderr: string, extra: string): string {
  if (!extra) return stderr;
  return stderr && !stderr.endsWith("\n") ? `${stderr}\n${extra}` : stderr + extra;
}

function describe(error: unknown): string {
  if (error instanceof HostExited) {
    const tail = error.exit.stderrTail.trim().split("\n").slice(-5).join("\n");
    return `${error.message}${tail ? `\n${tail}` : ""}`;
  }
  return (error as Error)?.message ?? String(error);
}
