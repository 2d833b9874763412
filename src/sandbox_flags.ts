/**
 * The permission flags of one sandboxed run: the operator's grants plus the run's own scratch directory,
 * minus the server's private directories.
 *
 * @module
 */
import type { Permissions } from "./permissions.ts";

/** Paths that shape a run's flags. */
export interface SandboxPaths {
  /** The run's private working directory: always readable and writable. */
  workDir: string;
  /** The directory holding every run's working directory: never visible to a run but its own part. */
  runsRoot: string;
  /** Caches shared by all runs (Deno's module and npm cache): never writable by a run. */
  sharedCaches: readonly string[];
  /** The operator's shared workspace, if enabled: readable, and writable when `writable`. */
  workspace?: { path: string; writable: boolean } | null;
}

/**
 * Builds the permission flags for a run.
 *
 * Deno lets a more specific path win (`--deny-read=/a --allow-read=/a/b` allows `/a/b`), but it turns an
 * unscoped `--allow-read` into a scoped one as soon as any `--allow-read=path` is added, and refuses
 * `--allow-read` next to `-A`. So an unscoped file grant is written as the equivalent `=/` before the
 * run's own directory is added, and `-A` gets only the denials that keep the shared cache intact.
 *
 * @example
 * ```ts
 * sandboxFlags(parsePermissionArgs(""), { workDir: "/t/r/js-1", runsRoot: "/t/r", sharedCaches: ["/c"] });
 * // ["--allow-read=/t/r/js-1", "--allow-write=/t/r/js-1", "--deny-read=/t/r", "--deny-write=/t/r,/c"]
 * ```
 */
export function sandboxFlags(permissions: Permissions, paths: SandboxPaths): string[] {
  const { workDir, runsRoot, sharedCaches } = paths;
  if (permissions.flags.includes("--allow-all")) {
    // Security: -A is the operator opting out of the sandbox; still keep the shared caches unwritable.
    return [...permissions.flags, `--deny-write=${sharedCaches.join(",")}`];
  }
  const flags = permissions.flags.map((flag) =>
    flag === "--allow-read" || flag === "--allow-write" ? `${flag}=/` : flag
  );
  const workspace = paths.workspace;
  return [
    ...flags,
    `--allow-read=${workDir}`,
    `--allow-write=${workDir}`,
    ...(workspace ? [`--allow-read=${workspace.path}`] : []),
    ...(workspace?.writable ? [`--allow-write=${workspace.path}`] : []),
    // Security: even with broad grants a run cannot see other runs nor write what later runs load.
    `--deny-read=${runsRoot}`,
    `--deny-write=${[runsRoot, ...sharedCaches].join(",")}`,
  ];
}
