/**
 * The pinned Pyodide distribution: where its runtime files are, and which lock file (package list with
 * hashes) is in force for the configured package source.
 *
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { version } from "pyodide";
import type { Logger } from "../log.ts";
import { sha256Hex } from "../sha256.ts";

/** The Pyodide version this server is built for (the `pyodide` import in deno.json). */
export const PYODIDE_VERSION: string = version;

/** Where Pyodide's own CDN serves this version's packages. */
export const DEFAULT_PYODIDE_PACKAGES_URL = `https://cdn.jsdelivr.net/pyodide/v${PYODIDE_VERSION}/full/`;

/** The runtime files of the npm `pyodide` package, as Deno installed it. */
export interface PyodideRuntime {
  /** File URL of `pyodide.mjs`. */
  moduleUrl: string;
  /** The package directory, with a trailing slash; the host may read it. */
  dir: string;
}

/** Locates the npm package's files (they are in Deno's npm cache once this module is loaded). */
export function pyodideRuntime(): PyodideRuntime {
  const moduleUrl = import.meta.resolve("pyodide");
  return { moduleUrl, dir: `${dirname(fileURLToPath(moduleUrl))}/` };
}

/** A Pyodide lock file, as much of it as is used here. */
export interface Lockfile {
  info: { version?: string; abi_version?: string; python?: string };
  packages: Record<string, { name: string; file_name: string; sha256: string; imports?: string[] }>;
}

/** Where the lock file in force is, and its sha256. */
export interface LockfileRef {
  path: string;
  sha256: string;
}

/**
 * Finds the lock file for `packagesUrl`: the npm package's own for Pyodide's CDN, else the mirror's
 * `pyodide-lock.json`, fetched through `fetchFile` (which caches, so a restart works offline) and checked
 * to be a lock file. Only its path travels on: the host reads it, the server parses it when it must.
 */
export async function locateLockfile(
  packagesUrl: string,
  runtime: PyodideRuntime,
  fetchFile: (url: string) => Promise<string>,
  logger?: Logger,
): Promise<LockfileRef> {
  const local = `${runtime.dir}pyodide-lock.json`;
  let path = local;
  if (packagesUrl !== DEFAULT_PYODIDE_PACKAGES_URL) {
    try {
      path = await fetchFile(`${packagesUrl}pyodide-lock.json`);
      const lock = JSON.parse(await Deno.readTextFile(path)) as Partial<Lockfile>;
      if (!lock.packages) throw new Error("it has no packages");
    } catch (error) {
      logger?.log(
        "warning",
        `could not read ${packagesUrl}pyodide-lock.json (${(error as Error).message}); using the lock file ` +
          `of Pyodide ${PYODIDE_VERSION}, whose hashes a mirror must match`,
      );
      path = local;
    }
  }
  return { path, sha256: await sha256Hex(await Deno.readFile(path)) };
}

/**
 * sha256 of each distribution file, by file name, from a lock file. An entry without a well-formed sha256
 * is left out, so its file is never fetched (the broker stores only files whose hash it knows).
 */
export async function distributionHashes(path: string): Promise<Map<string, string>> {
  const lock = JSON.parse(await Deno.readTextFile(path)) as Lockfile;
  const hashes = new Map<string, string>();
  for (const entry of Object.values(lock.packages)) {
    const sha256 = typeof entry.sha256 === "string" ? entry.sha256.toLowerCase() : "";
    if (typeof entry.file_name === "string" && /^[0-9a-f]{64}$/.test(sha256)) {
      hashes.set(entry.file_name, sha256);
    }
  }
  return hashes;
}
