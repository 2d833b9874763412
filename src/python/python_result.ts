/**
 * A Python call's result: the shared result shape plus what only Python has (the last value, whether the
 * session's state survived, what was installed), and how the host's answers become one.
 *
 * @module
 */
import { emptyResult, type RunResult } from "../result.ts";
import { DISK_ENTRY_LIMIT } from "../sandbox.ts";
import type { DoneMessage, HostExit } from "./host_process.ts";
import { HostExited } from "./host_process.ts";

/** Why a call was stopped before it finished. */
export type StopReason = "timeout" | "install-timeout" | "cancelled";

/** What to do about a package that did not install. */
const PACKAGE_ADVICE =
  "Pass its PyPI name in `packages` when it differs from the module's (scikit-learn for " +
  "sklearn, Pillow for PIL); a package needs a pure-Python wheel or a Pyodide build.";

const STATE_LOST = "The Python process was restarted: variables, imports, installed packages and files of " +
  "this session are gone; run what the next call needs again.";

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

/** The result of a call the host answered. */
export function fromDone(done: DoneMessage, why: StopReason | null, timeoutMs: number): PythonRunResult {
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
    // All of them: the tool returns what fits inline and keeps the rest as resources.
    result.attachments = done.displays.map((d) => ({
      mimeType: d.mimeType,
      ...(d.data !== undefined ? { data: d.data } : { text: d.text ?? "" }),
    }));
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
  const notInstalled = done.notInstalled ?? [];
  const skipped = notInstalledText(notInstalled);
  switch (done.outcome) {
    case "ok":
      if (skipped) {
        result.message = `${skipped} The code ran without ${notInstalled.length > 1 ? "them" : "it"}.`;
      }
      break;
    case "error": {
      result.status = "error";
      result.stderr = joinStreams(result.stderr, error);
      result.message = `Python raised ${lastLine}; the traceback is in stderr. Output printed before it is ` +
        "kept, and so is the session's state.";
      // An import that could not be installed and then failed: the install error is the hint.
      const missing = lastLine.match(/^ModuleNotFoundError: No module named '([^'.]+)/)?.[1];
      const cause = notInstalled.find((entry) => entry.module === missing);
      if (cause) {
        result.message =
          `Python raised ${lastLine}; the traceback is in stderr. ${cause.module} could not be ` +
          `installed: ${cause.error}. ${PACKAGE_ADVICE}`;
      } else if (skipped) result.message += ` ${skipped}`;
      break;
    }
    case "install_error":
      result.status = "error";
      result.message = `Could not install what the call asks for, so the code did not run. ${error} ` +
        "Check the names in `packages` and in the script's `# /// script` dependencies (PyPI names: " +
        "scikit-learn for sklearn, Pillow for PIL); a package needs a pure-Python wheel or a Pyodide build.";
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

/** The result of a call whose host died: killed by the session (`why`), by the memory watchdog, or crashed. */
export function fromExit(
  exit: HostExit,
  why: StopReason | null,
  limits: { timeoutMs: number; installTimeoutMs: number; memoryLimitMb: number; diskLimitMb: number },
): PythonRunResult {
  const base = { stateReset: true, exitCode: exit.code };
  if (exit.diskExceeded || exit.signal === "SIGXFSZ") {
    return failure(
      "crashed",
      `Killed for writing more than ${limits.diskLimitMb} MiB (or ${DISK_ENTRY_LIMIT} files) to the ` +
        `session's directory; its files are deleted. ${STATE_LOST}`,
      { ...base, diskExceeded: true },
    );
  }
  if (exit.memoryExceeded) {
    return failure(
      "crashed",
      `Killed for exceeding the memory limit (${limits.memoryLimitMb} MiB). ${STATE_LOST}`,
      { ...base, memoryExceeded: true },
    );
  }
  if (why === "timeout") {
    return failure(
      "timeout",
      `Timed out after ${limits.timeoutMs} ms and did not stop when interrupted (a loop in C code, or code ` +
        `that catches KeyboardInterrupt), so it was killed. ${STATE_LOST}`,
      { ...base, timedOut: true },
    );
  }
  if (why === "install-timeout") {
    return failure(
      "timeout",
      `Installing packages took longer than ${limits.installTimeoutMs} ms and was stopped; the code did not ` +
        `run. ${STATE_LOST}`,
      { ...base, timedOut: true },
    );
  }
  if (why === "cancelled") {
    return failure("cancelled", `Cancelled by the client. ${STATE_LOST}`, { ...base, cancelled: true });
  }
  // The first line the host printed that is not a stack frame says what broke, without internals.
  const detail = (exit.fatal ?? exit.stderrTail).split("\n").map((line) => line.trim())
    .find((line) => line && !line.startsWith("at ")) ?? "";
  return failure(
    "crashed",
    `The Python process ended unexpectedly (${exit.signal ?? `exit code ${exit.code}`})${
      detail ? `: ${detail}` : ""
    }. ${STATE_LOST}`,
    base,
  );
}

/** A result for a call that produced nothing. */
export function failure(
  status: RunResult["status"],
  message: string,
  fields: Partial<PythonRunResult> = {},
): PythonRunResult {
  return { ...emptyResult(status, message), stateReset: false, ...fields };
}

/** One sentence naming the imports that could not be installed and why (the first few). */
function notInstalledText(notInstalled: ReadonlyArray<{ module: string; error: string }>): string {
  if (!notInstalled.length) return "";
  const shown = notInstalled.slice(0, 5).map(({ module, error }) => `${module} (${error.slice(0, 600)})`);
  const more = notInstalled.length > 5 ? ` and ${notInstalled.length - 5} more` : "";
  return `Could not install ${shown.join("; ")}${more}.`;
}

function joinStreams(stderr: string, extra: string): string {
  if (!extra) return stderr;
  return stderr && !stderr.endsWith("\n") ? `${stderr}\n${extra}` : stderr + extra;
}

/** What went wrong, for a message: a dead host's last lines of stderr, else the error's message. */
export function describe(error: unknown): string {
  if (error instanceof HostExited) {
    const tail = error.exit.stderrTail.trim().split("\n").slice(-5).join("\n");
    return `${error.message}${tail ? `\n${tail}` : ""}`;
  }
  return (error as Error)?.message ?? String(error);
}
