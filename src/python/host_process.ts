/**
 * The server's side of one Python host process: spawning it with almost no permissions, the message
 * protocol, brokering its package downloads, interrupting and killing it.
 *
 * @module
 */
import { type McpResultMessage, refuseRequest } from "../code_mode_protocol.ts";
import type { Permissions } from "../permissions.ts";
import { launchSandboxed } from "../sandbox.ts";
import type { Child, ChildExit, ProcessGroups } from "../subprocess.ts";
import type { PyodideRuntime } from "./distribution.ts";
import { HELPER_SOURCE } from "./helper_py.ts";
import { HOST_URL } from "./host.ts";
import { type BrokerSession, NotAPackageUrl, type PackageBroker } from "./package_broker.ts";
import { type DoneMessage, type HostMessage, parseHostMessage, type ServerMessage } from "./protocol.ts";

/** What a host needs to start. */
export interface HostOptions {
  runtime: PyodideRuntime;
  /** The lock file in force (readable by the host). */
  lockFilePath: string;
  packageBaseUrl: string;
  indexUrls: readonly string[];
  broker: PackageBroker;
  /** The operator's permissions; a host takes only their network part. */
  permissions: Permissions;
  memoryLimitMb: number;
  /** What the host's private directory may hold (wheels unpacked, files Python writes through `js.Deno`). */
  diskLimitMb: number;
  outputLimitBytes: number;
  denoDir: string;
  /** An empty private directory to run in. */
  workDir: string;
  groups: ProcessGroups;
  serverEnv: Readonly<Record<string, string | undefined>>;
  /** The operator's shared workspace, if enabled. */
  workspace?: { path: string; writable: boolean } | null;
  /** A memory snapshot to boot from, with the sha256 the host checks it against. */
  snapshot?: { path: string; sha256: string };
  /**
   * Called once the process is spawned and its init message is in its pipe: from then on it boots on its own,
   * and the server may do other work (loading the MCP SDK) without holding the boot up.
   */
  onSpawned?: () => void;
}

export type { DoneMessage };

/** Why a host process ended. */
export interface HostExit extends ChildExit {
  /** The end of what the host wrote to stderr, for diagnostics. */
  stderrTail: string;
  /** What the host reported before it was killed for breaking (e.g. the interpreter itself failed). */
  fatal?: string;
}

/** Thrown when the host process ends during a call or at start-up. */
export class HostExited extends Error {
  constructor(readonly exit: HostExit) {
    super(`the Python process exited (${exit.signal ?? `code ${exit.code}`})`);
    this.name = "HostExited";
  }
}

/** Handlers for one call's events. */
export interface CallHandlers {
  onProgress?: (message: string) => void;
  /** Code mode: answers a request of the running call; null when it has no id to answer. */
  onMcp?: (request: unknown) => Promise<McpResultMessage | null>;
  /** Bytes the call wrote to stdout or stderr, as they come. */
  onOutput?: (stream: "stdout" | "stderr", chunk: Uint8Array) => void;
  /** Packages are being installed (only sent when there is something to install). */
  onInstalling?: () => void;
  /** Installation finished; the code starts executing now. */
  onExecuting?: () => void;
}

/** A running Python host. */
export class HostProcess {
  readonly exited: Promise<HostExit>;
  #child: Child;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #calls = new Map<
    number,
    { handlers: CallHandlers; resolve: (m: DoneMessage) => void; reject: (e: Error) => void }
  >();
  #ready: Promise<number>;
  #stopped = false;
  /** What the host said broke it, when it asked to be killed. */
  #fatal: string | null = null;
  #exit: HostExit | null = null;
  /** Aborts this host's downloads when it exits, so a hung mirror does not hold them for others. */
  #downloads = new AbortController();
  /** This host's downloads, capped; closed with {@linkcode #downloads}. */
  #packages: BrokerSession;

  private constructor(readonly options: HostOptions, role: "python-host" | "snapshot-builder") {
    const { runtime, broker, workDir } = options;
    const paths = { workDir, pyodideDir: runtime.dir, packageCacheDir: broker.cacheDir, main: HOST_URL };
    this.#child = launchSandboxed(
      role === "python-host"
        ? { profile: role, ...paths, permissions: options.permissions, workspace: options.workspace ?? null }
        : { profile: role, ...paths },
      {
        serverEnv: options.serverEnv,
        denoDir: options.denoDir,
        groups: options.groups,
        memoryLimitBytes: options.memoryLimitMb * 1024 * 1024,
        // The builder runs no user code and writes the snapshot (31 MB): no quota.
        ...(role === "python-host" ? { diskLimitBytes: options.diskLimitMb * 1024 * 1024 } : {}),
      },
    );
    this.#packages = options.broker.session({ signal: this.#downloads.signal });
    this.#writer = this.#child.stdin.getWriter();
    const stderrTail = this.#collectStderr();
    let readyResolve: (bootMs: number) => void = () => {};
    this.#ready = new Promise((resolve) => readyResolve = resolve);
    const reading = this.#readMessages(readyResolve);
    this.exited = this.#child.closed.then(async (exit) => {
      await reading.catch(() => {});
      return { ...exit, stderrTail: await stderrTail, ...(this.#fatal ? { fatal: this.#fatal } : {}) };
    });
    // Calls still waiting learn that the process is gone.
    this.exited.then((exit) => {
      this.#exit = exit;
      this.#downloads.abort(new Error("the Python process exited"));
      for (const call of this.#calls.values()) call.reject(new HostExited(exit));
    });
  }

  /** Spawns a host and waits until Pyodide has booted; returns its boot time too. */
  static async start(options: HostOptions): Promise<{ host: HostProcess; bootMs: number }> {
    const host = new HostProcess(options, "python-host");
    host.#sendInit(false);
    const bootMs = await Promise.race([
      host.#ready,
      host.exited.then((exit) => Promise.reject(new HostExited(exit))),
    ]);
    return { host, bootMs };
  }

  /**
   * Boots a host that only makes a memory snapshot (the helper defined, no package loaded, no user code ever
   * run) and returns the path of the file it wrote in its work dir.
   */
  static async buildSnapshot(options: HostOptions): Promise<string> {
    const host = new HostProcess(options, "snapshot-builder");
    const built = new Promise<string>((resolve) => host.#snapshotBuilt = resolve);
    host.#sendInit(true);
    try {
      return await Promise.race([built, host.exited.then((exit) => Promise.reject(new HostExited(exit)))]);
    } finally {
      host.kill();
      await host.exited;
    }
  }

  #snapshotBuilt: ((path: string) => void) | null = null;

  #sendInit(makeSnapshot: boolean): void {
    const options = this.options;
    const sent = this.#send({
      type: "init",
      pyodideUrl: options.runtime.moduleUrl,
      indexURL: options.runtime.dir,
      lockFilePath: options.lockFilePath,
      packageBaseUrl: options.packageBaseUrl,
      workDir: options.workDir,
      indexUrls: [...options.indexUrls],
      helper: HELPER_SOURCE,
      outputLimitBytes: options.outputLimitBytes,
      ...(options.workspace && !makeSnapshot ? { workspace: options.workspace } : {}),
      ...(options.snapshot && !makeSnapshot
        ? { snapshotPath: options.snapshot.path, snapshotSha256: options.snapshot.sha256 }
        : {}),
      ...(makeSnapshot ? { makeSnapshot } : {}),
    });
    if (options.onSpawned) sent.then(options.onSpawned);
  }

  /** The host's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Runs a call; rejects with {@linkcode HostExited} if the process dies first. */
  run(
    call: { callId: number; code: string; packages: readonly string[] },
    handlers: CallHandlers = {},
  ): Promise<DoneMessage> {
    return new Promise<DoneMessage>((resolve, reject) => {
      if (this.#exit) return reject(new HostExited(this.#exit));
      this.#calls.set(call.callId, { handlers, resolve, reject });
      this.#send({ type: "run", callId: call.callId, code: call.code, packages: [...call.packages] });
    }).finally(() => this.#calls.delete(call.callId));
  }

  /** Asks Python to raise KeyboardInterrupt (SIGUSR1 to the host's interrupt thread). */
  interrupt(): void {
    this.#child.signal("SIGUSR1");
  }

  /** Kills the host's whole process group. */
  kill(): void {
    this.#stopped = true;
    this.#child.kill();
  }

  /** Whether {@linkcode kill} was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Queues a message; resolves once it is written (or could not be: the exit says why). */
  #send(message: ServerMessage): Promise<void> {
    return this.#writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n")).catch(() => {});
  }

  async #readMessages(onReady: (bootMs: number) => void): Promise<void> {
    let buffer = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const message = parseHostMessage(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (message) this.#handle(message, onReady);
      }
      // Security: a host that floods stdout without newlines must not grow server memory without end.
      if (buffer.length > 16 * 1024 * 1024) this.kill();
    }
  }

  #handle(message: HostMessage, onReady: (bootMs: number) => void): void {
    switch (message.type) {
      case "ready":
        onReady(message.bootMs);
        break;
      case "fetch":
        this.#broker(message.id, message.url, message.accept);
        break;
      case "progress":
        this.#calls.get(message.callId)?.handlers.onProgress?.(message.message);
        break;
      case "output": {
        const onOutput = this.#calls.get(message.callId)?.handlers.onOutput;
        if (onOutput) onOutput(message.stream, Uint8Array.from(atob(message.data), (c) => c.charCodeAt(0)));
        break;
      }
      case "installing":
        this.#calls.get(message.callId)?.handlers.onInstalling?.();
        break;
      case "executing":
        this.#calls.get(message.callId)?.handlers.onExecuting?.();
        break;
      case "done":
        this.#calls.get(message.callId)?.resolve(message);
        break;
      case "mcp": {
        // Only the running call may make calls; there is at most one.
        const handlers = [...this.#calls.values()][0]?.handlers;
        const answer = handlers?.onMcp?.(message.request) ??
          Promise.resolve(unavailable(message.request));
        answer.then((reply) => reply && this.#send(reply), () => {});
        break;
      }
      case "fatal":
        this.#fatal ??= message.error.slice(0, 2000);
        this.kill();
        break;
      case "snapshot":
        // Security: only a builder, which never ran user code, may hand over a snapshot.
        if (this.#snapshotBuilt && message.path === `${this.options.workDir}/snapshot.bin`) {
          this.#snapshotBuilt(message.path);
        }
        break;
    }
  }

  async #broker(id: number, url: string, accept: string | undefined): Promise<void> {
    const progress = (text: string) => {
      for (const call of this.#calls.values()) call.handlers.onProgress?.(text);
    };
    try {
      const response = await this.#packages.fetch(url, { accept, onProgress: progress });
      this.#send({ type: "fetched", id, ...response });
    } catch (error) {
      if (error instanceof NotAPackageUrl) {
        this.#send({ type: "fetched", id, passthrough: true });
      } else {
        this.#send({ type: "fetched", id, error: `${url}: ${(error as Error).message}` });
      }
    }
  }

  async #collectStderr(): Promise<string> {
    let tail = "";
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      tail = (tail + chunk).slice(-4096);
    }
    return tail;
  }
}

/** The answer to a code-mode request when there is no call to make it for, or no upstream configured. */
function unavailable(request: unknown): McpResultMessage | null {
  return refuseRequest(
    request,
    "unknown_server",
    "no MCP servers are configured for code mode (the operator sets CODE_RUNNER_MCP_CONFIG)",
  );
}
