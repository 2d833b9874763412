/**
 * Starts a sandboxed `deno run` child: its command line from {@linkcode sandboxCommand}, its environment
 * from {@linkcode childEnv}, a private web-storage origin removed after it exits, and a {@linkcode Child}
 * that watches and kills it. JavaScript runs, Python hosts and the snapshot builder all start here.
 *
 * @module
 */
import { childEnv } from "./child_env.ts";
import { originStorageDirs, privateOrigin, removeOriginStorage } from "./origin_storage.ts";
import { join } from "node:path";
import { removeTree } from "./remove_tree.ts";
import { sandboxCommand, sandboxEnv, type SandboxProfile } from "./sandbox_command.ts";
import { Child, type ProcessGroups } from "./subprocess.ts";

/** A profile without the origin, which is made fresh for every process. */
export type SandboxSpec = SandboxProfile extends infer P
  ? P extends SandboxProfile ? Omit<P, "origin"> : never
  : never;

/** What the server adds to a profile to start it. */
export interface LaunchOptions {
  /** The server's environment; only allow-listed variables reach the child. */
  serverEnv: Readonly<Record<string, string | undefined>>;
  /** Deno's cache directory, shared with the server. */
  denoDir: string;
  /** Variables the operator exposed with `--allow-env=NAME`. */
  passThroughEnv?: readonly string[];
  groups: ProcessGroups;
  memoryLimitBytes?: number;
  /** What the process may keep on disk: its directory and its web storage together. */
  diskLimitBytes?: number;
  /** How a one-shot child says it is done (see `SpawnOptions.endMarker` in subprocess.ts). */
  endMarker?: Uint8Array;
}

/** Files and directories a sandboxed process may keep; many empty files fill a disk's inodes too. */
export const DISK_ENTRY_LIMIT = 100_000;

/** No single file may grow past the disk limit, but the limit never goes below this for Deno's own caches. */
const MIN_FILE_SIZE_LIMIT = 256 * 1024 * 1024;

/**
 * Starts a sandboxed child in `spec.workDir`.
 *
 * @example
 * ```ts
 * import { HOST_URL } from "./python/host.ts";
 * import { ProcessGroups } from "./subprocess.ts";
 * async function example(workDir: string, pyodideDir: string, packageCacheDir: string) {
 *   const child = launchSandboxed(
 *     { profile: "snapshot-builder", workDir, pyodideDir, packageCacheDir, main: HOST_URL },
 *     { serverEnv: Deno.env.toObject(), denoDir: "/cache/deno", groups: new ProcessGroups() },
 *   );
 *   child.kill();
 *   await child.closed;
 * }
 * ```
 */
export function launchSandboxed(spec: SandboxSpec, options: LaunchOptions): Child {
  const origin = privateOrigin();
  const command = [Deno.execPath(), ...sandboxCommand({ ...spec, origin } as SandboxProfile)];
  const { diskLimitBytes } = options;
  const wrappers = utilLinux();
  // A file-size limit (RLIMIT_FSIZE) bounds how far one file can grow between two disk checks.
  if (diskLimitBytes && wrappers.prlimit) {
    command.unshift(wrappers.prlimit, `--fsize=${Math.max(diskLimitBytes, MIN_FILE_SIZE_LIMIT)}`, "--");
  }
  // Security and hygiene: the kernel kills the child when the server dies, even by SIGKILL or the OOM
  // killer, so no sandbox outlives it (prctl PR_SET_PDEATHSIG). Each wrapper execs the next in the same
  // process, so the pid is Deno's.
  if (wrappers.setpriv) command.unshift(wrappers.setpriv, "--pdeathsig", "KILL", "--");
  // Its own session and process group, entered by the child itself: cheaper than Deno's `detached`.
  if (wrappers.setsid) command.unshift(wrappers.setsid, "--");
  const [program, ...args] = command as [string, ...string[]];
  return new Child({
    command: program,
    args,
    env: {
      ...childEnv(options.serverEnv, {
        denoDir: options.denoDir,
        workDir: spec.workDir,
        passThrough: options.passThroughEnv ?? [],
      }),
      ...sandboxEnv(spec.profile),
    },
    cwd: spec.workDir,
    groups: options.groups,
    leadsOwnSession: wrappers.setsid !== null,
    ...(options.memoryLimitBytes ? { memoryLimitBytes: options.memoryLimitBytes } : {}),
    ...(options.endMarker ? { endMarker: options.endMarker } : {}),
    ...(diskLimitBytes
      ? {
        diskLimit: {
          dirs: [
            spec.workDir,
            ...originStorageDirs(options.denoDir, origin),
            emitCacheDir(options.denoDir, spec.workDir),
          ],
          limitBytes: diskLimitBytes,
          limitEntries: DISK_ENTRY_LIMIT,
        },
      }
      : {}),
    // What Deno itself wrote for the process outside its permissions goes with it: web storage, and the
    // emit cache of TypeScript it loaded from its directory (which holds that source, in a source map).
    afterExit: async () => {
      await removeOriginStorage(options.denoDir, origin);
      await removeTree(emitCacheDir(options.denoDir, spec.workDir));
    },
  });
}

/** Paths of the util-linux programs children are started through; null where missing. */
export interface UtilLinux {
  setpriv: string | null;
  prlimit: string | null;
  setsid: string | null;
}

let found: UtilLinux | undefined;

/**
 * util-linux's `setpriv` (parent-death signal), `prlimit` (resource limits) and `setsid` (own session) on
 * Linux; null where they are missing, and then a child outlives a killed server, only the disk watchdog
 * bounds a file, and Deno makes the session at a higher cost.
 */
export function utilLinux(): UtilLinux {
  return found ??= {
    setpriv: Deno.build.os === "linux" ? which("setpriv") : null,
    prlimit: Deno.build.os === "linux" ? which("prlimit") : null,
    setsid: Deno.build.os === "linux" ? which("setsid") : null,
  };
}

function which(name: string): string | null {
  for (const dir of ["/usr/bin", "/bin"]) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // Not there.
    }
  }
  return null;
}

/** Where Deno keeps the transpiled TypeScript of modules under `dir` (with their source, in a source map). */
export function emitCacheDir(denoDir: string, dir: string): string {
  return join(denoDir, "gen", "file", dir);
}
