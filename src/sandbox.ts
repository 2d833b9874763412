/**
 * Starts a sandboxed `deno run` child: its command line from {@linkcode sandboxCommand}, its environment
 * from {@linkcode childEnv}, a private web-storage origin removed after it exits, and a {@linkcode Child}
 * that watches and kills it. JavaScript runs, Python hosts and the snapshot builder all start here.
 *
 * @module
 */
import { childEnv } from "./child_env.ts";
import { privateOrigin, removeOriginStorage } from "./origin_storage.ts";
import { sandboxCommand, type SandboxProfile } from "./sandbox_command.ts";
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
}

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
  const args = sandboxCommand({ ...spec, origin } as SandboxProfile);
  const setpriv = deathSignalWrapper();
  return new Child({
    command: setpriv ?? Deno.execPath(),
    // Security and hygiene: the kernel kills the child when the server dies, even by SIGKILL or the OOM
    // killer, so no sandbox outlives it (prctl PR_SET_PDEATHSIG via util-linux's setpriv, which then execs
    // Deno in the same process).
    args: setpriv ? ["--pdeathsig", "KILL", "--", Deno.execPath(), ...args] : args,
    env: childEnv(options.serverEnv, {
      denoDir: options.denoDir,
      workDir: spec.workDir,
      passThrough: options.passThroughEnv ?? [],
    }),
    cwd: spec.workDir,
    groups: options.groups,
    ...(options.memoryLimitBytes ? { memoryLimitBytes: options.memoryLimitBytes } : {}),
    afterExit: () => removeOriginStorage(options.denoDir, origin),
  });
}

let setprivPath: string | null | undefined;

/** util-linux's `setpriv` on Linux, or null where there is none (the child then outlives a killed server). */
export function deathSignalWrapper(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (Deno.build.os !== "linux") return setprivPath;
  for (const path of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    try {
      if (Deno.statSync(path).isFile) return setprivPath = path;
    } catch {
      // Not there.
    }
  }
  return setprivPath;
}
