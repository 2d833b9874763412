/**
 * Runs JavaScript/TypeScript in a fresh `deno run` child with exactly the operator's permissions.
 *
 * @module
 */
import { removeTree } from "../remove_tree.ts";
import { join } from "node:path";
import type { Config } from "../config.ts";
import type { ConcurrencyLimiter } from "../limits.ts";
import { emptyResult, type RunResult } from "../result.ts";
import type { Runner, RunOptions } from "../runner.ts";
import { DISK_ENTRY_LIMIT, launchSandboxed } from "../sandbox.ts";
import { diskFullMessage } from "../disk_space.ts";
import { WorkspaceLinks } from "../workspace_links.ts";
import type { ProcessGroups } from "../subprocess.ts";
import { LauncherPool, type ReadyLauncher } from "./pool.ts";
import { collectOutputFiles, OUTPUT_DIR, OUTPUT_FILE_LIMITS } from "./output_files.ts";
import { LAUNCHER_URL, MCP_SOCKET, USER_MODULE, WARM_MODULE } from "./launcher.ts";
import { serveRunSocket } from "./mcp_socket.ts";
import type { CodeMode } from "../code_mode.ts";

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
  /** The operator's upstream MCP servers, which runs may call through their socket; null for none. */
  codeMode?: CodeMode | null;
}

/** Waiting launchers are stopped after this long without a run, and started again by the next. */
const POOL_IDLE_MS = 5 * 60 * 1000;
/** About how long a launcher takes to start on a busy machine: calls closer together grow the pool. */
const POOL_REFILL_MS = 100;
/** While other runs are in flight, a finished run's refill waits this long at most for them to end. */
const POOL_REFILL_DELAY_MS = 50;
/** A pool grown by calls in a burst is back to one waiting launcher after this long without a call. */
const POOL_SHRINK_MS = 5 * 1000;

/** One `run_javascript` call. */
export interface JavaScriptCall {
  /** An ES module (JavaScript or TypeScript). */
  code: string;
  /** Wall-clock limit of the run itself; waiting in the queue does not count. */
  timeoutMs: number;
}

/**
 * Runs code, one child process per call.
 *
 * @example
 * ```ts
 * async function example(runner: JavaScriptRunner) {
 *   const result = await runner.run({ code: "console.log(1 + 1)", timeoutMs: 5000 });
 *   return result.stdout; // "2\n"
 * }
 * ```
 */
export class JavaScriptRunner implements Runner<JavaScriptCall> {
  readonly #pool: LauncherPool;

  /** Links leading out of the operator's workspace, denied to every run. */
  readonly #workspaceLinks: WorkspaceLinks | null;

  constructor(readonly deps: JavaScriptRunnerDeps) {
    this.#workspaceLinks = deps.config.workspace ? new WorkspaceLinks(deps.config.workspace.path) : null;
    this.#pool = new LauncherPool({
      // One waiting launcher covers calls that come one at a time with a pause; calls back to back or in
      // parallel grow the pool up to the concurrency cap, since more could not run at once.
      min: 1,
      max: deps.config.maxConcurrency,
      refillMs: POOL_REFILL_MS,
      shrinkMs: POOL_SHRINK_MS,
      idleMs: POOL_IDLE_MS,
      start: () => this.#startLauncher(),
      discard: (launcher) => this.#discard(launcher),
    });
  }

  /** Starts launchers ahead of the first run. */
  warm(): void {
    this.#pool.fill();
  }

  /** Stops the waiting launchers. */
  close(): Promise<void> {
    return this.#pool.close();
  }

  async #discard(launcher: ReadyLauncher): Promise<void> {
    await launcher.child.discard();
    await removeTree(launcher.workDir);
  }

  /** Removals of finished runs' directories still under way. */
  #cleanups = new Set<Promise<void>>();

  #cleanUp(launcher: ReadyLauncher): void {
    const cleanup = (async () => {
      await launcher.child.closed;
      await removeTree(launcher.workDir);
    })();
    this.#cleanups.add(cleanup);
    cleanup.finally(() => this.#cleanups.delete(cleanup));
  }

  async #startLauncher(): Promise<ReadyLauncher> {
    const { config, denoDir, runsRoot, serverEnv, groups } = this.deps;
    const workDir = await Deno.makeTempDir({ dir: runsRoot, prefix: "js-" });
    await Deno.mkdir(join(workDir, OUTPUT_DIR));
    await Deno.writeTextFile(join(workDir, WARM_MODULE), "export {};\n");
    const grant = config.permissions.grants.env;
    const linkDenials = await this.#workspaceLinks?.current();
    // Known only to the server and, once the code is in place, to the launcher (see launcher.ts).
    const endMarker = new TextEncoder().encode(`\0${crypto.randomUUID()}:`);
    const child = launchSandboxed({
      profile: "javascript",
      permissions: config.permissions,
      workDir,
      runsRoot,
      sharedCaches: [denoDir],
      workspace: config.workspace,
      ...(linkDenials
        ? { workspaceLinksOut: linkDenials.links, workspaceLinkHolders: linkDenials.holders }
        : {}),
      ...(this.deps.codeMode ? { mcpSocket: join(workDir, MCP_SOCKET) } : {}),
      memoryLimitMb: config.memoryLimitMb,
      main: LAUNCHER_URL,
    }, {
      serverEnv,
      denoDir,
      passThroughEnv: Array.isArray(grant) ? grant : [],
      groups,
      memoryLimitBytes: config.memoryLimitMb * 1024 * 1024,
      diskLimitBytes: config.diskLimitMb * 1024 * 1024,
      endMarker,
    });
    return { child, workDir, endMarker };
  }

  /** Runs the code and reports what happened; never throws for anything the code does. */
  async run({ code, timeoutMs }: JavaScriptCall, options: RunOptions = {}): Promise<RunResult> {
    const { config, limiter } = this.deps;
    const clientSignal = options.signal ?? new AbortController().signal;
    let release: () => void;
    try {
      release = await limiter.acquire(clientSignal);
    } catch {
      return emptyResult("cancelled", "Cancelled by the client before the run started.");
    }
    // The directories of runs that just ended are removed before this one needs space, and before the free
    // space is judged.
    await Promise.all(this.#cleanups);
    const full = await diskFullMessage(this.deps.runsRoot);
    if (full) {
      release();
      return emptyResult("crashed", full);
    }
    let launcher: ReadyLauncher | undefined;
    try {
      launcher = await this.#pool.take();
      // Synchronous: a few bytes to a local file, and one event-loop hop less on every run.
      Deno.writeTextFileSync(join(launcher.workDir, USER_MODULE), code);
    } catch (error) {
      // The host could not prepare a run (a full disk, a missing temp directory): say so, keep serving.
      release();
      if (launcher) this.#discard(launcher).catch(() => {});
      return emptyResult(
        "crashed",
        await diskFullMessage(this.deps.runsRoot, true) ??
          `The server could not prepare the run: ${(error as Error).message}. ` +
            "The machine's temp directory may be unwritable; try again later.",
      );
    }
    const { child, workDir } = launcher;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([clientSignal, timeout]);
    // Code mode: the run's calls to upstream tools come over its own socket, bounded by the run's signal.
    const { codeMode } = this.deps;
    let view: ReturnType<CodeMode["forRun"]> | undefined;
    const runEnded = new AbortController();
    const channel = codeMode
      ? serveRunSocket(
        join(workDir, MCP_SOCKET),
        () => view ??= codeMode.forRun(AbortSignal.any([signal, runEnded.signal]), timeoutMs),
      )
      : null;
    try {
      const outcome = await child.finish({
        stdin: launcher.endMarker,
        outputLimitBytes: config.outputLimitBytes,
        signal,
        ...(options.onOutput ? { onOutput: options.onOutput } : {}),
      });
      await channel?.close();
      const timedOut = outcome.aborted && timeout.aborted && !clientSignal.aborted;
      const cancelled = outcome.aborted && clientSignal.aborted;
      const stdout = hideWorkDir(outcome.stdout.text, workDir);
      const stderr = hideWorkDir(outcome.stderr.text, workDir);
      const memoryExceeded = outcome.memoryExceeded || /out of memory/i.test(stderr);
      const diskExceeded = outcome.diskExceeded || outcome.signal === "SIGXFSZ";
      const result: RunResult = {
        status: "ok",
        stdout,
        stderr,
        exitCode: outcome.code,
        durationMs: outcome.durationMs,
        timedOut,
        cancelled,
        truncated: outcome.stdout.truncated || outcome.stderr.truncated,
        memoryExceeded,
        ...(diskExceeded ? { diskExceeded } : {}),
      };
      const output = await collectOutputFiles(workDir);
      // All of them: the tool returns what fits inline and keeps the rest as resources.
      if (output.files.length) result.attachments = output.files;
      const skipped = output.skipped.length
        ? `Not returned (not a regular file, or past ${OUTPUT_FILE_LIMITS.count} files or ` +
          `${OUTPUT_FILE_LIMITS.totalBytes} bytes in all): ${output.skipped.join(", ")}.`
        : "";
      if (timedOut) {
        result.status = "timeout";
        result.message = `Timed out after ${timeoutMs} ms and was killed. Make the code ` +
          `finish sooner, or pass a larger timeout_ms (at most ${config.maxTimeoutMs}).`;
      } else if (cancelled) {
        result.status = "cancelled";
        result.message = "Cancelled by the client; the run was killed.";
      } else if (diskExceeded) {
        result.status = "crashed";
        result.message =
          `Killed for writing more than ${config.diskLimitMb} MiB (or ${DISK_ENTRY_LIMIT} files) ` +
          "to disk; its files are deleted. Write less, or delete files you no longer need as you go.";
      } else if (memoryExceeded) {
        result.status = "crashed";
        result.message = `Killed for exceeding the memory limit (${config.memoryLimitMb} MiB). ` +
          "Use less memory, e.g. process data in chunks.";
      } else if (outcome.code === null) {
        result.status = "crashed";
        result.message = `The run's process was killed by ${outcome.signal}.`;
      } else if (outcome.code !== 0) {
        result.status = "error";
        result.message = failureHint(stderr, outcome.code);
      }
      if (skipped) result.message = result.message ? `${result.message} ${skipped}` : skipped;
      return result;
    } finally {
      // Calls the run left in flight end with it.
      runEnded.abort();
      channel?.close().catch(() => {});
      release();
      // Cleaning up and refilling the pool happen after the answer is on its way.
      // Registered now, so the next run waits for it before judging free space; done after the answer.
      this.#cleanUp(launcher);
      this.#refill();
    }
  }

  #refillTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Refills the pool once the runs in flight are done, or at once when calls wait for a slot: launchers boot
   * on the same cores as the runs, and a burst of calls finishes sooner when their refills wait for it. A
   * long run in flight holds the refill back by `POOL_REFILL_DELAY_MS` at most.
   */
  #refill(): void {
    const { limiter } = this.deps;
    if (limiter.running > 0 && limiter.queued === 0) {
      if (!this.#refillTimer) {
        this.#refillTimer = setTimeout(() => this.#fillNow(), POOL_REFILL_DELAY_MS);
        Deno.unrefTimer(this.#refillTimer);
      }
      return;
    }
    // After the answer is on its way.
    setTimeout(() => this.#fillNow(), 0);
  }

  #fillNow(): void {
    clearTimeout(this.#refillTimer);
    this.#refillTimer = undefined;
    this.#pool.fill();
  }
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
