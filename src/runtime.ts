/**
 * What a running server holds apart from MCP: directories, process groups, diagnostics, the JavaScript
 * runner and the Python sessions with their shared package broker, cache and snapshot. It imports nothing
 * of the MCP SDK, so the bin can start Python booting before the SDK loads.
 *
 * @module
 */
import { removeTree } from "./remove_tree.ts";
import { emitCacheDir } from "./sandbox.ts";
import { dirname, join } from "node:path";
import { CodeMode } from "./code_mode.ts";
import type { Config } from "./config.ts";
import { JavaScriptRunner } from "./javascript/runner.ts";
import { ConcurrencyLimiter } from "./limits.ts";
import { Logger } from "./log.ts";
import { pyodideRuntime } from "./python/distribution.ts";
import { PythonInterpreters } from "./python/interpreters.ts";
import type { PythonSession } from "./python/session.ts";
import { ProcessGroups } from "./subprocess.ts";

/** Everything but the MCP servers. */
export interface Runtime {
  readonly config: Config;
  readonly denoDir: string;
  /** The private directory holding every run's working directory. */
  readonly runsRoot: string;
  readonly groups: ProcessGroups;
  /** Diagnostics, to stderr and to every session's client. */
  readonly logger: Logger;
  readonly javascript: JavaScriptRunner;
  /** Python's package broker, lock file and snapshot, shared by every session. */
  readonly interpreters: PythonInterpreters;
  /** The operator's upstream MCP servers that runs may call (code mode); null when none is configured. */
  readonly codeMode: CodeMode | null;
  /** The first Python session, started (when warm) as soon as the runtime exists. */
  readonly python: PythonSession;
  /** Another Python session, whose interpreter starts on its first call; closing it forgets it. */
  newPython(): PythonSession;
  /** Kills every child and removes every temp directory; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Creates the runtime; with `warm` (the default) a launcher and the first Python interpreter start at once.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * async function example() {
 *   const runtime = await createRuntime(loadConfig(Deno.env.toObject()), Deno.env.toObject(), { warm: false });
 *   await runtime.close();
 * }
 * ```
 */
export async function createRuntime(
  config: Config,
  serverEnv: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
  options: { warm?: boolean } = {},
): Promise<Runtime> {
  const warm = options.warm ?? true;
  const denoDir = await resolveDenoDir(serverEnv);
  const runsRoot = await Deno.realPath(await Deno.makeTempDir({ prefix: RUNS_ROOT_PREFIX }));
  await Deno.writeTextFile(join(runsRoot, OWNER_FILE), processIdentity(Deno.pid) ?? String(Deno.pid));
  // Servers killed hard (SIGKILL, the OOM killer) could not remove their directories; this one does, while
  // Python boots.
  const removingAbandoned = removeAbandonedRunsRoots(dirname(runsRoot), denoDir).catch(() => {});
  const groups = new ProcessGroups();
  const logger = new Logger();
  const codeMode = config.mcpConfigPath ? new CodeMode(config.mcpConfigPath, { logger, serverEnv }) : null;
  const interpreters = new PythonInterpreters({
    config,
    logger,
    denoDir,
    runsRoot,
    groups,
    serverEnv,
    codeMode,
  });
  const sessions = new Set<PythonSession>();
  // Sessions get an interpreter on their first call; only the first one's starts with the server.
  const newPython = (startNow = false) => {
    const python: PythonSession = interpreters.newSession({
      warm: startNow,
      onClose: () => sessions.delete(python),
    });
    sessions.add(python);
    return python;
  };
  // Python first: it is the longer boot. Its process is spawned before this returns and the bin loads the MCP
  // SDK, so that Python boots while the SDK loads rather than after.
  const spawned = warm ? interpreters.nextSpawn() : undefined;
  const python = newPython(warm);
  const javascript = new JavaScriptRunner({
    config,
    denoDir,
    runsRoot,
    groups,
    limiter: new ConcurrencyLimiter(config.maxConcurrency),
    serverEnv,
    codeMode,
  });
  if (warm) javascript.warm();
  // Not for long, though: a Python start that waits for the network (a mirror's lock file) boots later.
  let spawnWait: ReturnType<typeof setTimeout> | undefined;
  await Promise.all([
    Promise.race([spawned, new Promise((resolve) => spawnWait = setTimeout(resolve, MAX_SPAWN_WAIT_MS))]),
    removingAbandoned,
  ]);
  clearTimeout(spawnWait);
  let closing: Promise<void> | undefined;
  return {
    config,
    denoDir,
    runsRoot,
    groups,
    logger,
    javascript,
    interpreters,
    codeMode,
    python,
    newPython: () => newPython(),
    close() {
      closing ??= (async () => {
        // No Python process starts from now on, and every child dies first, booting ones too (a Python
        // process restoring its snapshot, the snapshot builder): nothing is waited for that is killed anyway.
        const interpretersClosed = interpreters.close();
        groups.killAll();
        await Promise.all([
          ...[...sessions].map((session) => session.close()),
          interpretersClosed,
          javascript.close(),
          codeMode?.close(),
        ]);
        groups.killAll();
        await removeTree(runsRoot);
        await removeTree(emitCacheDir(denoDir, runsRoot));
      })();
      return closing;
    },
  };
}

const RUNS_ROOT_PREFIX = "code-runner-mcp-";
/** Start-up waits this long at most for the first Python process to be spawned (see `createRuntime`). */
const MAX_SPAWN_WAIT_MS = 250;
/** In each server's runs root: which process owns it, so a later server can tell when it is dead. */
const OWNER_FILE = ".owner";

/** A process's pid and start time (from /proc), which together never name another process; null if gone. */
function processIdentity(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const startTime = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    return `${pid} ${startTime}`;
  } catch {
    return null;
  }
}

/**
 * Removes the runs roots in `tempDir` whose owning server process no longer exists, and Deno's emit cache of
 * their runs (Linux).
 */
async function removeAbandonedRunsRoots(tempDir: string, denoDir: string): Promise<void> {
  if (Deno.build.os !== "linux") return;
  for await (const entry of Deno.readDir(tempDir)) {
    if (!entry.isDirectory || !entry.name.startsWith(RUNS_ROOT_PREFIX)) continue;
    const dir = join(tempDir, entry.name);
    const owner = await Deno.readTextFile(join(dir, OWNER_FILE)).catch(() => null);
    // No owner file: not ours, or a server still starting; leave it.
    if (!owner || processIdentity(Number(owner.split(" ")[0])) === owner) continue;
    await removeTree(dir);
    await removeTree(emitCacheDir(denoDir, dir));
  }
}

/** Deno's cache directory as the running Deno sees it, so runs share the server's downloads. */
async function resolveDenoDir(env: Readonly<Record<string, string | undefined>>): Promise<string> {
  if (env.DENO_DIR) return await Deno.realPath(env.DENO_DIR).catch(() => env.DENO_DIR as string);
  // The npm package Pyodide came from sits in `<DENO_DIR>/npm/<registry>/pyodide/<version>/`; reading
  // that saves starting `deno info` on every start.
  const fromPyodide = pyodideRuntime().dir.match(/^(.*)\/npm\/[^/]+\/pyodide\/[^/]+\/$/)?.[1];
  if (fromPyodide) return fromPyodide;
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).output();
  if (!success) throw new Error("`deno info --json` failed; set DENO_DIR to Deno's cache directory");
  const info = JSON.parse(new TextDecoder().decode(stdout)) as { denoDir?: unknown };
  if (typeof info.denoDir !== "string") throw new Error("`deno info --json` did not name denoDir");
  return info.denoDir;
}
