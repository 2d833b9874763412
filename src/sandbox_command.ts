/**
 * The `deno run` command line of every sandboxed process, built from one table per profile: a JavaScript
 * run, a Python host, or the Python snapshot builder. Every flag either kind of child gets comes from here.
 *
 * @module
 */
import type { Permissions } from "./permissions.ts";

/** Directories every profile knows about. */
interface CommonPaths {
  /** The process's private working directory (also its TMPDIR): always readable and writable. */
  workDir: string;
  /** Web storage of the process stays under this private origin (see origin_storage.ts). */
  origin: string;
  /** The main module: the JavaScript launcher or the Python host, as a `data:` URL. */
  main: string;
}

/** A JavaScript run: the operator's grants plus its own directory, minus the server's private ones. */
export interface JavaScriptProfile extends CommonPaths {
  profile: "javascript";
  permissions: Permissions;
  /** The directory holding every run's working directory: never visible to a run but its own part. */
  runsRoot: string;
  /** Caches shared by all runs (Deno's module and npm cache): never writable by a run. */
  sharedCaches: readonly string[];
  workspace: { path: string; writable: boolean } | null;
  /** Code mode's socket for this run (its only way to the server), when the operator configured upstreams. */
  mcpSocket?: string;
  /** Links in the workspace that lead out of it (and links to directories): denied, so a run never leaves
   * the workspace through one. */
  workspaceLinksOut?: readonly string[];
  /** Directories holding a link that leads out: not writable, so they cannot be renamed (see workspace_links.ts). */
  workspaceLinkHolders?: readonly string[];
  memoryLimitMb: number;
}

/** A session's Python host: Pyodide's files, the package cache, its own directory; network if granted. */
export interface PythonHostProfile extends CommonPaths {
  profile: "python-host";
  permissions: Permissions;
  /** The npm `pyodide` package directory. */
  pyodideDir: string;
  /** The verified package cache (read only). */
  packageCacheDir: string;
  workspace: { path: string; writable: boolean } | null;
}

/** The builder of Pyodide's memory snapshot: it never runs user code and needs no grant of the operator's. */
export interface SnapshotBuilderProfile extends CommonPaths {
  profile: "snapshot-builder";
  pyodideDir: string;
  packageCacheDir: string;
}

/** What a sandboxed process is. */
export type SandboxProfile = JavaScriptProfile | PythonHostProfile | SnapshotBuilderProfile;

/**
 * Builds the `deno run` arguments of a sandboxed process (everything after the Deno executable).
 *
 * @example
 * ```ts
 * import { parsePermissionArgs } from "./permissions.ts";
 * const args = sandboxCommand({
 *   profile: "javascript", permissions: parsePermissionArgs("--allow-read"), workDir: "/t/r/js-1",
 *   runsRoot: "/t/r", sharedCaches: ["/c"], workspace: null, memoryLimitMb: 512, origin: "https://x.invalid",
 *   main: "data:,",
 * });
 * // A broad grant reaches the server's directories, so they are denied: other runs stay hidden.
 * if (!args.some((arg) => arg.startsWith("--deny-read=/t/r,"))) throw new Error("other runs must stay hidden");
 * ```
 */
export function sandboxCommand(spec: SandboxProfile): string[] {
  return [
    "run",
    // Security: without these, a deno.json, package.json, .npmrc or lock file in the working directory or
    // any parent could remap imports or registries.
    "--no-config",
    "--no-lock",
    "--no-prompt",
    "--quiet",
    ...permissionFlags(spec),
    ...v8Flags(spec),
    // Security: localStorage and the Cache API of this process stay with it.
    `--location=${spec.origin}`,
    spec.main,
  ];
}

/**
 * V8 settings per profile. A JavaScript run gets the operator's memory limit and no code cache. A Python
 * host keeps the code cache (Pyodide's modules load faster with it) and V8's WebAssembly defaults, which
 * already compile lazily and tier up only hot functions (Liftoff-only saved 5 MiB more but ran a Python
 * loop 2.3 times slower); its JavaScript is Pyodide's glue, so a 1 MiB young generation is enough, and
 * `gc()` lets it give back what boot and each call leave behind once idle (see host.ts). The snapshot
 * builder runs once: defaults.
 */
function v8Flags(spec: SandboxProfile): string[] {
  switch (spec.profile) {
    case "javascript":
      return [
        // Security: V8's code cache would keep each run's compiled code, string literals included, in the
        // shared Deno directory for good, one entry per run (each run's code has its own path). It is also
        // 2 ms of CPU per run; only imports of large npm packages compile more slowly without it.
        "--no-code-cache",
        `--v8-flags=--max-old-space-size=${spec.memoryLimitMb}`,
      ];
    case "python-host":
      return ["--v8-flags=--expose-gc,--max-semi-space-size=1"];
    case "snapshot-builder":
      return [];
  }
}

/**
 * Environment variables a profile adds to the allow-listed ones (see child_env.ts). A Python host has glibc
 * give freed memory back to the system beyond 128 KiB: V8 compiles hot WebAssembly functions on worker
 * threads, and the 30 MiB of compiler memory they free would otherwise stay with the process for its life.
 *
 * @example
 * ```ts
 * if (sandboxEnv("javascript").GLIBC_TUNABLES !== undefined) throw new Error("runs get no tunables");
 * ```
 */
export function sandboxEnv(profile: SandboxProfile["profile"]): Record<string, string> {
  return profile === "python-host" ? { GLIBC_TUNABLES: "glibc.malloc.trim_threshold=131072" } : {};
}

function permissionFlags(spec: SandboxProfile): string[] {
  switch (spec.profile) {
    case "javascript":
      return javascriptFlags(spec);
    case "python-host":
      // Security: the whole sandbox of Python. Read its runtime and the package cache; read and write only
      // its own directory (Pyodide's loader unpacks wheels there); no env, run, ffi or sys; network only
      // when the operator granted it.
      return [
        `--allow-read=${spec.pyodideDir},${spec.packageCacheDir},${spec.workDir}`,
        `--allow-write=${spec.workDir}`,
        ...workspaceFlags(spec.workspace),
        ...networkFlags(spec.permissions),
      ];
    case "snapshot-builder":
      return [
        `--allow-read=${spec.pyodideDir},${spec.packageCacheDir},${spec.workDir}`,
        `--allow-write=${spec.workDir}`,
      ];
  }
}

/**
 * Deno lets a more specific path win (`--deny-read=/a --allow-read=/a/b` allows `/a/b`), but it turns an
 * unscoped `--allow-read` into a scoped one as soon as any `--allow-read=path` is added, and refuses
 * `--allow-read` next to `-A`. So an unscoped file grant is written as the equivalent `=/` before the run's
 * own directory is added, and `-A` gets only the denials that keep the shared cache intact.
 *
 * Deno 2.9 also misjudges some mixes of several denials with allowed paths that sort before the run's
 * directory (measured: `--allow-read=/tmp/aaa,<run dir> --deny-read=/etc,<runs root>` refuses the run its
 * own `main.ts`). So the server's private directories are denied only where a grant reaches them, every
 * denial of a kind goes in one flag, and the runs root comes first in it.
 */
function javascriptFlags(spec: JavaScriptProfile): string[] {
  const { permissions, workDir, runsRoot, sharedCaches } = spec;
  if (permissions.flags.includes("--allow-all")) {
    // Security: -A is the operator opting out of the sandbox; still keep the shared caches unwritable.
    return [...permissions.flags, `--deny-write=${sharedCaches.join(",")}`];
  }
  const flags = permissions.flags.map((flag) =>
    flag === "--allow-read" || flag === "--allow-write" ? `${flag}=/` : flag
  );
  const scoped = (prefix: string) =>
    flags.filter((flag) => flag.startsWith(`${prefix}=`)).flatMap((flag) =>
      flag.slice(prefix.length + 1).split(",")
    );
  const reaches = (kind: "read" | "write", path: string) =>
    scoped(`--allow-${kind}`).some((grant) =>
      grant === "/" || path === grant || path.startsWith(`${grant}/`)
    );
  // Security: the operating system follows a link after Deno checked its path; deny the link itself.
  const links = linkDenials(spec.workspace ? spec.workspaceLinksOut ?? [] : []);
  // Security: even with broad grants a run cannot see other runs nor write what later runs load.
  // Deno keeps other runs' transpiled code (with its source) and web storage in its cache directory.
  const cacheData = sharedCaches.flatMap((cache) => [`${cache}/gen`, `${cache}/location_data`]);
  const denyRead = [
    ...(reaches("read", runsRoot) ? [runsRoot] : []),
    ...cacheData.filter((path) => reaches("read", path)),
    ...scoped("--deny-read"),
    ...links,
  ];
  const denyWrite = [
    ...(reaches("write", runsRoot) ? [runsRoot] : []),
    ...sharedCaches.filter((cache) => reaches("write", cache)),
    ...scoped("--deny-write"),
    ...links,
    ...(spec.workspace?.writable ? linkDenials(spec.workspaceLinkHolders ?? []) : []),
  ];
  return [
    ...flags.filter((flag) => !/^--deny-(read|write)=/.test(flag)),
    `--allow-read=${workDir}`,
    `--allow-write=${workDir}`,
    // Deno counts a Unix socket as network: this grant reaches the run's own socket and nothing else.
    ...(spec.mcpSocket && permissions.grants.net !== "all" ? [`--allow-net=unix:${spec.mcpSocket}`] : []),
    ...workspaceFlags(spec.workspace),
    ...(denyRead.length ? [`--deny-read=${denyRead.join(",")}`] : []),
    ...(denyWrite.length ? [`--deny-write=${denyWrite.join(",")}`] : []),
  ];
}

/** The operator's workspace: what the operator shares, nothing more. */
function workspaceFlags(workspace: { path: string; writable: boolean } | null): string[] {
  if (!workspace) return [];
  return [
    `--allow-read=${workspace.path}`,
    ...(workspace.writable ? [`--allow-write=${workspace.path}`] : []),
  ];
}

/** Links to deny; Deno separates paths with commas, so a link whose path has one is denied by its directory. */
function linkDenials(links: readonly string[]): string[] {
  return [...new Set(links.map((link) => link.includes(",") ? link.slice(0, link.lastIndexOf("/")) : link))]
    .filter((path) => path && !path.includes(","));
}

/** Only the network part of the operator's grants (`-A` counts as unrestricted network). */
function networkFlags(permissions: Permissions): string[] {
  const flags = permissions.flags.filter((flag) => /^--(allow|deny)-net(=|$)/.test(flag));
  if (permissions.grants.net === "all" && !flags.includes("--allow-net")) flags.unshift("--allow-net");
  return flags;
}
