/**
 * What both tools run on: a runner takes one call and answers with a result, never an exception for
 * anything the code did.
 *
 * @module
 */
import type { RunResult } from "./result.ts";

/** How a caller follows and stops a call. */
export interface RunOptions {
  /** The client's cancellation. */
  signal?: AbortSignal;
  /** Progress lines (installs, heartbeats) for the client. */
  onProgress?: (message: string) => void;
  /** Every byte the code writes to stdout or stderr, as it comes (all of it, also what the result leaves out). */
  onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
}

/** A language runtime as the tools see it. */
export interface Runner<Call, Result extends RunResult = RunResult> {
  /** Runs one call; outcomes of the code are values in the result. */
  run(call: Call, options?: RunOptions): Promise<Result>;
}
