/**
 * Runs JavaScript/TypeScript in a fresh `deno run` child with exactly the operator's permissions.
 *
 * @module
 */
import { join } from "node:path";
import { childEnv } from "../child_env.ts";
import { sandboxFlags } from "../sandbox_flags.ts";
import type { Config } from "../config.ts";
import type { ConcurrencyLimiter } from "../limits.ts";
import type { RunResult } from "../result.ts";
import { type ProcessGroups, spawnCapped } from "../subprocess.ts";
import { LAUNCHER_URL, USER_MODULE } from "./launcher.ts";

/** What the runner needs from the server. */
export interface JavaScriptRunnerDeps {
  config: Config;
  /** Deno's cache directory, shared by all runs and never writable by them. */
  denoDir: string;
  /** A private directory of the server; each run gets a fresh subdirectory. */
  runsRoot: string;
  groups: ProcessGroups;
  limiter: ConcurrencyLimiter;
  /** The server's environment, from which only the allow-listed variables reach a run. */
  serverEnv: Readonly<Record<string, string | undefined>>;
}

/** Options of one run. */
export interface JavaScriptRunOptions {
  /** Wall-clock limit of the run itself; waiting in the queue does not count. */
  timeoutMs: number;
  /** The client's cancellation. */
  signal?: AbortSignal;
}

/**
 * Runs code, one child process per call.
 *
 * @example
 * ```ts
 * const result = await runner.run("console.log(1 + 1)", { timeoutMs: 5000 });
 * result.stdout; // "2\n"
 * ```
 */
export class JavaScriptRunner {
  constructor(readonly deps: JavaScriptRunnerDeps) {}

  /** The `deno run` arguments for a run in `workDir`, launcher last. */
  denoArgs(workDir: string): string[] {
    const { config, denoDir, runsRoot } = this.deps;
    return [
      "run",
      // Security: without these, a deno.json, package.json, .npmrc or lock file in the working
      // directory or any parent could remap imports or registries.
      "--no-config",
      "--no-lock",
      "--no-prompt",
      "--quiet",
      ...sandboxFlags(config.permissions, { workDir, runsRoot, sharedCaches: [denoDir] }),
      `--v8-flags=--max-old-space-size=${config.memoryLimitMb}`,
      LAUNCHER_URL,
    ];
  }

  /** Runs `code` and reports what happened; never throws for anything the code does. */
  async run(code: string, options: JavaScriptRunOptions): Promise<RunResult> {
    const { config, limiter, groups } = this.deps;
    const clientSignal = options.signal ?? new AbortController().signal;
    let release: () => void;
    try {
      release = await limiter.acquire(clientSignal);
    } catch {
      return cancelledBeforeStart();
    }
    const workDir = await Deno.makeTempDir({ dir: this.deps.runsRoot, prefix: "js-" });
    try {
      await Deno.writeTextFile(join(workDir, USER_MODULE), code);
      const timeout = AbortSignal.timeout(options.timeoutMs);
      const signal = AbortSignal.any([clientSignal, timeout]);
      const grant = config.permissions.grants.env;
      const outcome = await spawnCapped({
        command: Deno.execPath(),
        args: this.denoArgs(workDir),
        env: childEnv(this.deps.serverEnv, {
          denoDir: this.deps.denoDir,
          workDir,
          passThrough: Array.isArray(grant) ? grant : [],
        }),
        cwd: workDir,
        outputLimitBytes: config.outputLimitBytes,
        memoryLimitBytes: config.memoryLimitMb * 1024 * 1024,
        signal,
        groups,
      });
      const timedOut = outcome.aborted && timeout.aborted && !clientSignal.aborted;
      const cancelled = outcome.aborted && clientSignal.aborted;
      const stdout = hideWorkDir(outcome.stdout.text, workDir);
      const stderr = hideWorkDir(outcome.stderr.text, workDir);
      const memoryExceeded = outcome.memoryExceeded || /out of memory/i.test(stderr);
      const result: RunResult = {
        status: "ok",
        stdout,
        stderr,
        exitCode: outcome.exitCode,
        durationMs: outcome.durationMs,
        timedOut,
        cancelled,
        truncated: outcome.stdout.truncated || outcome.stderr.truncated,
        memoryExceeded,
      };
      if (timedOut) {
        result.status = "timeout";
        result.message = `Timed out after ${options.timeoutMs} ms and was killed. Make the code ` +
          `finish sooner, or pass a larger timeout_ms (at most ${config.maxTimeoutMs}).`;
      } else if (cancelled) {
        result.status = "cancelled";
        result.message = "Cancelled by the client; the run was killed.";
      } else if (memoryExceeded) {
        result.status = "crashed";
        result.message = `Killed for exceeding the memory limit (${config.memoryLimitMb} MiB). ` +
          "Use less memory, e.g. process data in chunks.";
      } else if (outcome.exitCode === null) {
        result.status = "crashed";
        result.message = `The run's process was killed by ${outcome.signal}.`;
      } else if (outcome.exitCode !== 0) {
        result.status = "error";
        result.message = failureHint(stderr, outcome.exitCode);
      }
      return result;
    } finally {
      release();
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
    }
  }
}

function cancelledBeforeStart(): RunResult {
  return {
    status: "cancelled",
    stdout: "",
    stderr: "",
    exitCode: null,
    durationMs: 0,
    timedOut: false,
    cancelled: true,
    truncated: false,
    memoryExceeded: false,
    message: "Cancelled by the client before the run started.",
  };
}

/** Shows paths in the private run directory as relative ones (`main.ts:3:7`) and drops launcher frames. */
function hideWorkDir(text: string, workDir: string): string {
  return text.replaceAll(`file://${workDir}/`, "").replaceAll(`${workDir}/`, "")
    .replace(/^\s*at (?:async )?(?:launch )?\(?data:application\/javascript,.*\n?/gm, "");
}

function failureHint(stderr: string, exitCode: number): string {
  if (/NotCapable|Requires \w+ access/.test(stderr)) {
    return "The code needs a permission this server does not grant. Permissions are set by the " +
      "server's operator (DENO_PERMISSION_ARGS); rewrite the code to work without it.";
  }
  if (/SyntaxError|Expected .* got|The module's source code could not be parsed/.test(stderr)) {
    return "The code could not be parsed; fix the syntax error shown in stderr.";
  }
  return `The code failed (exit code ${exitCode}); see stderr.`;
}
