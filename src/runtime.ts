/**
 * What a running server holds apart from MCP: directories, process groups, diagnostics, the JavaScript
 * runner and the Python sessions with their shared package broker, cache and snapshot. It imports nothing
 * of the MCP SDK, so the bin can start Python booting before the SDK loads.
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "./config.ts";
import { JavaScriptRunner } from "./javascript/runner.ts";
import { ConcurrencyLimiter } from "./limits.ts";
import { Logger } from "./log.ts";
import {
  DEFAULT_PYODIDE_PACKAGES_URL,
  distributionHashes,
  locateLockfile,
  type LockfileRef,
  PYODIDE_VERSION,
  pyodideRuntime,
} from "./python/distribution.ts";
import { HELPER_SOURCE } from "./python/helper_py.ts";
import { HOST_URL } from "./python/host.ts";
import { type HostOptions, HostProcess } from "./python/host_process.ts";
import { PackageBroker } from "./python/package_broker.ts";
import { PythonSession } from "./python/session.ts";
import { snapshotKey, SnapshotStore } from "./python/snapshot.ts";
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
  /** The first Python session, started (when warm) as soon as the runtime exists. */
  readonly python: PythonSession;
  /** Another Python session, with its own interpreter. */
  newPython(): PythonSession;
  /** Forgets a closed session. */
  forget(python: PythonSession): void;
  /** Kills every child and removes every temp directory; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Creates the runtime; with `warm` (the default) a launcher and the first Python interpreter start at once.
 *
 * @example
 * ```ts
 * const runtime = await createRuntime(loadConfig(Deno.env.toObject()));
 * ```
 */
export async function createRuntime(
  config: Config,
  serverEnv: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
  options: { warm?: boolean } = {},
): Promise<Runtime> {
  const warm = options.warm ?? true;
  const denoDir = await resolveDenoDir(serverEnv);
  const runsRoot = await Deno.realPath(await Deno.makeTempDir({ prefix: "code-runner-mcp-" }));
  const groups = new ProcessGroups();
  const logger = new Logger();
  const pythonSession = pythonSessions(config, { logger, denoDir, runsRoot, groups, serverEnv });
  const sessions = new Set<PythonSession>();
  const newPython = () => {
    const python = pythonSession();
    if (warm) python.warm();
    sessions.add(python);
    return python;
  };
  // Python first: it is the longer boot.
  const python = newPython();
  const javascript = new JavaScriptRunner({
    config,
    denoDir,
    runsRoot,
    groups,
    limiter: new ConcurrencyLimiter(config.maxConcurrency),
    serverEnv,
  });
  if (warm) javascript.warm();
  let closing: Promise<void> | undefined;
  return {
    config,
    denoDir,
    runsRoot,
    groups,
    logger,
    javascript,
    python,
    newPython,
    forget: (session) => sessions.delete(session),
    close() {
      closing ??= (async () => {
        await Promise.all([...[...sessions].map((session) => session.close()), javascript.close()]);
        groups.killAll();
        await Deno.remove(runsRoot, { recursive: true }).catch(() => {});
      })();
      return closing;
    },
  };
}

/** What a Python session is built from. */
interface PythonContext {
  logger: Logger;
  denoDir: string;
  runsRoot: string;
  groups: ProcessGroups;
  serverEnv: Readonly<Record<string, string | undefined>>;
}

/**
 * Makes Python sessions that share one package broker, cache and snapshot; each session has its own
 * interpreter process.
 */
export function pythonSessions(config: Config, context: PythonContext): () => PythonSession {
  const runtime = pyodideRuntime();
  const packageBaseUrl = config.pyodidePackagesUrl ?? DEFAULT_PYODIDE_PACKAGES_URL;
  let hashes: Promise<Map<string, string>> | undefined;
  const broker: PackageBroker = new PackageBroker({
    cacheDir: config.packageCacheDir ?? join(context.denoDir, "code-runner-mcp", "packages"),
    sources: { pyodideBaseUrl: packageBaseUrl, indexUrls: config.pypiIndexUrls },
    distributionHashes: async (): Promise<Map<string, string>> =>
      await (hashes ??= distributionHashes((await lockfile()).path)),
  });
  let lock: Promise<LockfileRef> | undefined;
  const lockfile = (): Promise<LockfileRef> =>
    lock ??= (async (): Promise<LockfileRef> => {
      await Deno.mkdir(broker.cacheDir, { recursive: true });
      return await locateLockfile(packageBaseUrl, runtime, async (url) => {
        const response = await broker.fetch(url);
        if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
        return response.path;
      }, context.logger);
    })();
  const { grants } = config.permissions;
  const netFlags = config.permissions.flags.filter((flag) => /^--(allow|deny)-net\b/.test(flag));
  if (grants.net === "all" && !netFlags.includes("--allow-net")) netFlags.push("--allow-net");
  const hostOptions = async (
    workDir: string,
    snapshot?: { path: string; sha256: string },
  ): Promise<HostOptions> => ({
    runtime,
    lockFilePath: (await lockfile()).path,
    packageBaseUrl,
    indexUrls: config.pypiIndexUrls,
    broker,
    netFlags,
    memoryLimitMb: config.pythonMemoryLimitMb,
    outputLimitBytes: config.outputLimitBytes,
    denoDir: context.denoDir,
    workDir,
    groups: context.groups,
    serverEnv: context.serverEnv,
    workspace: config.workspace,
    ...(snapshot ? { snapshot } : {}),
  });
  const inWorkDir = async <T>(use: (workDir: string) => Promise<T>): Promise<T> => {
    const workDir = await Deno.makeTempDir({ dir: context.runsRoot, prefix: "py-" });
    return await use(workDir).catch(async (error) => {
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
      throw error;
    });
  };
  let store: Promise<SnapshotStore> | undefined;
  const snapshots = () =>
    store ??= (async () =>
      new SnapshotStore(
        join(broker.cacheDir, "snapshots"),
        await snapshotKey([
          PYODIDE_VERSION,
          Deno.version.deno,
          HOST_URL,
          HELPER_SOURCE,
          (await lockfile()).sha256,
        ]),
      ))();
  // Built at most once per server; a snapshot that is missing, stale or corrupt is rebuilt.
  let building: Promise<{ path: string; sha256: string } | null> | undefined;
  const snapshot = async (): Promise<{ path: string; sha256: string } | null> => {
    const slot = await snapshots();
    const ready = await slot.find();
    if (ready) return ready;
    building ??= inWorkDir(async (workDir) => {
      try {
        return await slot.adopt(await HostProcess.buildSnapshot(await hostOptions(workDir)));
      } finally {
        await Deno.remove(workDir, { recursive: true }).catch(() => {});
      }
    }).catch((error) => {
      context.logger.log(
        "warning",
        `could not build a Python snapshot, booting without one: ${(error as Error).message}`,
      );
      return null;
    }).finally(() => building = undefined);
    return await building;
  };
  const boot = (snapshot: { path: string; sha256: string } | null) =>
    inWorkDir(async (workDir) => {
      const { host } = await HostProcess.start(await hostOptions(workDir, snapshot ?? undefined));
      host.exited.finally(() => Deno.remove(workDir, { recursive: true }).catch(() => {}));
      return host;
    });
  return () =>
    new PythonSession({
      logger: context.logger,
      installTimeoutMs: config.installTimeoutMs,
      memoryLimitMb: config.pythonMemoryLimitMb,
      maxTimeoutMs: config.maxTimeoutMs,
      startHost: async () => {
        const found = await snapshot();
        if (!found) return await boot(null);
        try {
          return await boot(found);
        } catch (error) {
          // A corrupt snapshot, or one that does not boot, is thrown away; boot without it this time.
          context.logger.log(
            "warning",
            `the Python snapshot did not boot (${(error as Error).message}); it will be rebuilt`,
          );
          await (await snapshots()).discard();
          return await boot(null);
        }
      },
    });
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
