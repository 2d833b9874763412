/**
 * The pinned Pyodide distribution: where its runtime files are, and which lock file (package list with
 * hashes) is in force for the configured package source.
 *
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { version } from "pyodide";
import { log } from "../log.ts";

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

/**
 * Reads the lock file for `packagesUrl`: the npm package's own for Pyodide's CDN, else the mirror's
 * `pyodide-lock.json`, fetched through `fetchText` (which caches) so a restart works offline.
 */
export async function loadLockfile(
  packagesUrl: string,
  runtime: PyodideRuntime,
  fetchText: (url: string) => Promise<string>,
): Promise<{ text: string; lock: Lockfile }> {
  const local = await Deno.readTextFile(`${runtime.dir}pyodide-lock.json`);
  if (packagesUrl === DEFAULT_PYODIDE_PACKAGES_URL) return { text: local, lock: JSON.parse(local) };
  try {
    const text = await fetchText(`${packagesUrl}pyodide-lock.json`);
    const lock = JSON.parse(text) as Lockfile;
    if (!lock.packages) throw new Error("it has no packages");
    return { text, lock };
  } catch (error) {
    log(
      "warning",
      `could not read ${packagesUrl}pyodide-lock.json (${(error as Error).message}); using the lock file ` +
        `of Pyodide ${PYODIDE_VERSION}, whose hashes a mirror must match`,
    );
    return { text: local, lock: JSON.parse(local) };
  }
}

/** sha256 of each distribution file, by file name. */
export function distributionHashes(lock: Lockfile): Map<string, string> {
  return new Map(Object.values(lock.packages).map((entry) => [entry.file_name, entry.sha256]));
}
