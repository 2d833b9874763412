/**
 * Where Python interpreters come from: one package broker, lock file and memory snapshot shared by every
 * session of the server, and a fresh sandboxed host process (in its own private directory) for each
 * interpreter a session asks for.
 *
 * @module
 */
import { removeTree } from "../remove_tree.ts";
import { join } from "node:path";
import type { CodeMode } from "../code_mode.ts";
import type { Config } from "../config.ts";
import { diskFullMessage } from "../disk_space.ts";
import type { Logger } from "../log.ts";
import type { ProcessGroups } from "../subprocess.ts";
import {
  DEFAULT_PYODIDE_PACKAGES_URL,
  distributionHashes,
  locateLockfile,
  type LockfileRef,
  PYODIDE_VERSION,
  type PyodideRuntime,
  pyodideRuntime,
} from "./distribution.ts";
import { HELPER_SOURCE } from "./helper_py.ts";
import { HOST_URL } from "./host.ts";
import { type HostOptions, HostProcess } from "./host_process.ts";
import { PackageBroker } from "./package_broker.ts";
import { PythonSession } from "./session.ts";
import { snapshotKey, SnapshotStore } from "./snapshot.ts";

/** What the interpreters share with the rest of the server. */
export interface InterpreterContext {
  config: Config;
  logger: Logger;
  /** Deno's cache directory. */
  denoDir: string;
  /** The server's private directory; each host gets a fresh subdirectory. */
  runsRoot: string;
  groups: ProcessGroups;
  serverEnv: Readonly<Record<string, string | undefined>>;
  /** The operator's upstream MCP servers, for code mode; null for none. */
  codeMode?: CodeMode | null;
}

/** A snapshot file and the sha256 the host checks it against. */
type Snapshot = { path: string; sha256: string };

/**
 * Starts Python hosts and makes sessions that use them.
 *
 * @example
 * ```ts
 * async function example(interpreters: PythonInterpreters) {
 *   const session = interpreters.newSession({ warm: true });
 *   await session.run({ code: "1 + 1", packages: [], timeoutMs: 5000, reset: false });
 *   await session.close();
 * }
 * ```
 */
export class PythonInterpreters {
  readonly broker: PackageBroker;
  readonly #runtime: PyodideRuntime = pyodideRuntime();
  readonly #packageBaseUrl: string;
  #lockfile: Promise<LockfileRef> | undefined;
  #hashes: Promise<Map<string, string>> | undefined;
  #snapshots: Promise<SnapshotStore> | undefined;
  /** Built at most once at a time; a snapshot that is missing, stale or corrupt is rebuilt. */
  #building: Promise<Snapshot | null> | undefined;

  constructor(readonly context: InterpreterContext) {
    const { config } = context;
    this.#packageBaseUrl = config.pyodidePackagesUrl ?? DEFAULT_PYODIDE_PACKAGES_URL;
    this.broker = new PackageBroker({
      cacheDir: config.packageCacheDir ?? join(context.denoDir, "code-runner-mcp", "packages"),
      sources: { pyodideBaseUrl: this.#packageBaseUrl, indexUrls: config.pypiIndexUrls },
      distributionHashes: async () =>
        await (this.#hashes ??= this.lockfile().then((lock) => distributionHashes(lock.path))),
      limits: {
        maxCacheBytes: config.packageCacheMaxMb * 1024 * 1024,
        maxFileBytes: config.packageMaxFileMb * 1024 * 1024,
      },
    });
  }

  /** Aborted by `close`. */
  readonly #closing = new AbortController();

  /** Open sessions, for reclaiming the interpreter of the least recently used idle one. */
  readonly #sessions = new Set<PythonSession>();
  /** Every host booting or running, the ready one included. */
  readonly #live = new Set<Promise<HostProcess>>();
  /** One booted interpreter no session owns yet, so the next session to need one gets it at once. */
  #ready: Promise<HostProcess> | null = null;
  /** Set once any session needed a second interpreter: from then on one is kept ready. */
  #replacing = false;

  /**
   * A new session. Its interpreter starts on its first call, from the ready one when there is one, or at
   * once with `warm` (the first session of the server).
   */
  newSession(options: { warm: boolean; onClose?: () => void }): PythonSession {
    const { config, logger } = this.context;
    const session: PythonSession = new PythonSession({
      logger,
      onClose: () => {
        this.#sessions.delete(session);
        options.onClose?.();
      },
      installTimeoutMs: config.installTimeoutMs,
      memoryLimitMb: config.pythonMemoryLimitMb,
      diskLimitMb: config.diskLimitMb,
      codeMode: this.context.codeMode ?? null,
      startHost: (replacing) => this.#hostFor(session, replacing),
    });
    this.#sessions.add(session);
    if (options.warm) session.warm();
    return session;
  }

  /** Interpreters running or booting, the ready one included. */
  get liveCount(): number {
    return this.#live.size;
  }

  /** Stops the ready interpreter (sessions stop their own). */
  async close(): Promise<void> {
    // A start still waiting for the network (a mirror's lock file) gives up now.
    this.#closing.abort();
    const ready = this.#ready;
    this.#ready = null;
    const host = await ready?.catch(() => null);
    host?.kill();
    await host?.exited;
  }

  /**
   * An interpreter for `session`: the ready one, else a new one once there is room under the cap of
   * Python processes (made by stopping the least recently used idle session's interpreter). Keeps one
   * ready afterwards when several sessions share the server or a session has needed a replacement.
   */
  async #hostFor(session: PythonSession, replacing: boolean): Promise<HostProcess> {
    if (replacing) this.#replacing = true;
    let host = this.#ready;
    this.#ready = null;
    if (!host) {
      await this.#makeRoom(session).catch((error) => {
        this.#spawned();
        throw error;
      });
      host = this.#track(this.startHost());
    }
    if (this.#replacing || this.#sessions.size > 1) this.#refill();
    return await host;
  }

  #refill(): void {
    if (this.#ready || this.#live.size >= this.context.config.maxPythonProcesses) return;
    const ready = this.#track(this.startHost());
    this.#ready = ready;
    ready.then((host) => host.exited.then(() => this.#ready === ready && (this.#ready = null)), () => {
      if (this.#ready === ready) this.#ready = null;
    });
  }

  async #makeRoom(requester: PythonSession): Promise<void> {
    const cap = this.context.config.maxPythonProcesses;
    while (this.#live.size >= cap) {
      const idle = [...this.#sessions]
        .filter((session) => session !== requester && session.state === "idle" && session.hasInterpreter)
        .sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!idle) {
        throw new Error(
          `all ${cap} Python processes this server may run are busy (CODE_RUNNER_MAX_PYTHON_PROCESSES); ` +
            "try again when a call has finished",
        );
      }
      this.context.logger.log(
        "info",
        `stopping the Python process of an idle session to make room (cap ${cap})`,
      );
      await idle.reclaim();
      // Its exit is seen on the next turn; wait for the count to drop.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  #track(host: Promise<HostProcess>): Promise<HostProcess> {
    this.#live.add(host);
    host.then(
      (booted) => booted.exited.finally(() => this.#live.delete(host)),
      () => this.#live.delete(host),
    );
    return host;
  }

  /** The lock file in force: the npm package's, or the configured mirror's (cached for offline restarts). */
  lockfile(): Promise<LockfileRef> {
    return this.#lockfile ??= (async () => {
      await Deno.mkdir(this.broker.cacheDir, { recursive: true });
      return await locateLockfile(this.#packageBaseUrl, this.#runtime, async (url) => {
        const response = await this.broker.fetch(url, { signal: this.#closing.signal });
        if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
        return response.path;
      }, this.context.logger);
    })();
  }

  /** Calls waiting for the next Python process to be spawned. */
  #spawnWaiters: Array<() => void> = [];

  /**
   * Resolves once the next Python process (a host, or the snapshot builder) has been spawned and given its
   * init message, so it boots on its own, or once starting it has failed. The server waits for this (250 ms
   * at most) before it loads the MCP SDK, so that the two happen at once instead of one after the other.
   */
  nextSpawn(): Promise<void> {
    return new Promise((resolve) => this.#spawnWaiters.push(resolve));
  }

  #spawned(): void {
    for (const resolve of this.#spawnWaiters.splice(0)) resolve();
  }

  /** Boots a host, from the snapshot when there is one that works. */
  async startHost(): Promise<HostProcess> {
    try {
      return await this.#startHost();
    } finally {
      this.#spawned();
    }
  }

  async #startHost(): Promise<HostProcess> {
    const found = await this.#snapshot();
    if (!found) return await this.#boot(null);
    try {
      return await this.#boot(found);
    } catch (error) {
      // Killed because the server is closing: the snapshot is fine, and nothing more is started.
      this.#closing.signal.throwIfAborted();
      // A corrupt snapshot, or one that does not boot, is thrown away; boot without it this time.
      this.context.logger.log(
        "warning",
        `the Python snapshot did not boot (${(error as Error).message}); it will be rebuilt`,
      );
      await (await this.#store()).discard();
      return await this.#boot(null);
    }
  }

  #store(): Promise<SnapshotStore> {
    return this.#snapshots ??= (async () =>
      new SnapshotStore(
        join(this.broker.cacheDir, "snapshots"),
        await snapshotKey([
          PYODIDE_VERSION,
          Deno.version.deno,
          HOST_URL,
          HELPER_SOURCE,
          (await this.lockfile()).sha256,
        ]),
      ))();
  }

  async #snapshot(): Promise<Snapshot | null> {
    const store = await this.#store();
    const ready = await store.find();
    if (ready) return ready;
    this.#building ??= this.#inWorkDir(async (workDir) => {
      try {
        const options = await this.#hostOptions(workDir);
        return await store.adopt(
          await HostProcess.buildSnapshot({ ...options, onSpawned: () => this.#spawned() }),
        );
      } finally {
        await removeTree(workDir);
      }
    }).catch((error) => {
      this.context.logger.log(
        "warning",
        `could not build a Python snapshot, booting without one: ${(error as Error).message}`,
      );
      return null;
    }).finally(() => this.#building = undefined);
    return await this.#building;
  }

  #boot(snapshot: Snapshot | null): Promise<HostProcess> {
    return this.#inWorkDir(async (workDir) => {
      const options = await this.#hostOptions(workDir, snapshot);
      const { host } = await HostProcess.start({ ...options, onSpawned: () => this.#spawned() });
      host.exited.finally(() => removeTree(workDir));
      return host;
    });
  }

  async #hostOptions(workDir: string, snapshot: Snapshot | null = null): Promise<HostOptions> {
    const { config, denoDir, groups, serverEnv } = this.context;
    const lockFilePath = (await this.lockfile()).path;
    // No process is started once the server is closing.
    this.#closing.signal.throwIfAborted();
    return {
      runtime: this.#runtime,
      lockFilePath,
      packageBaseUrl: this.#packageBaseUrl,
      indexUrls: config.pypiIndexUrls,
      broker: this.broker,
      permissions: config.permissions,
      memoryLimitMb: config.pythonMemoryLimitMb,
      diskLimitMb: config.diskLimitMb,
      outputLimitBytes: config.outputLimitBytes,
      denoDir,
      workDir,
      groups,
      serverEnv,
      workspace: config.workspace,
      ...(snapshot ? { snapshot } : {}),
    };
  }

  /** Runs `use` in a fresh private directory, removed if `use` fails. */
  async #inWorkDir<T>(use: (workDir: string) => Promise<T>): Promise<T> {
    const { runsRoot } = this.context;
    const full = await diskFullMessage(runsRoot);
    if (full) throw new Error(full);
    const workDir = await Deno.makeTempDir({ dir: runsRoot, prefix: "py-" }).catch(async (error) => {
      throw new Error(await diskFullMessage(runsRoot, true) ?? (error as Error).message);
    });
    return await use(workDir).catch(async (error) => {
      await removeTree(workDir);
      throw error;
    });
  }
}
