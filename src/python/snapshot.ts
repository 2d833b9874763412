/**
 * Memory snapshots of a booted Pyodide, kept in the package cache: built once per Pyodide version and
 * configuration by a process that never ran user code, checked against their recorded sha256 before
 * every use, and rebuilt when missing, stale or corrupt.
 *
 * @module
 */
import { join } from "node:path";
import { sha256Hex } from "../sha256.ts";

/** What a snapshot's manifest records. */
interface Manifest {
  key: string;
  sha256: string;
  bytes: number;
}

/**
 * The key of a snapshot: everything that makes a snapshot unusable when it changes (Pyodide and Deno
 * versions, the lock file, the host and helper sources).
 */
export async function snapshotKey(parts: readonly string[]): Promise<string> {
  return (await sha256Hex(parts.join("\0"))).slice(0, 24);
}

/**
 * One snapshot slot in a directory.
 *
 * @example
 * ```ts
 * async function example(cacheDir: string, build: () => Promise<string>) {
 *   const store = new SnapshotStore(`${cacheDir}/snapshots`, await snapshotKey(["314.0.7", "lock sha256"]));
 *   return await store.find() ?? await store.adopt(await build());
 * }
 * ```
 */
export class SnapshotStore {
  constructor(readonly dir: string, readonly key: string) {}

  /** Where the snapshot lives. */
  get path(): string {
    return join(this.dir, `${this.key}.bin`);
  }

  get #manifestPath(): string {
    return join(this.dir, `${this.key}.json`);
  }

  /**
   * The snapshot and the sha256 its manifest records, if both exist and agree on the key and size; null
   * otherwise. The reader checks the hash when it reads the bytes (the Python host does, before use).
   */
  async find(): Promise<{ path: string; sha256: string } | null> {
    try {
      const manifest = JSON.parse(await Deno.readTextFile(this.#manifestPath)) as Manifest;
      const { size } = await Deno.stat(this.path);
      if (manifest.key !== this.key || manifest.bytes !== size) return null;
      return { path: this.path, sha256: manifest.sha256 };
    } catch {
      return null;
    }
  }

  /** Takes a freshly built snapshot file into the store; returns where it is and its sha256. */
  async adopt(builtFile: string): Promise<{ path: string; sha256: string }> {
    const bytes = await Deno.readFile(builtFile);
    await Deno.mkdir(this.dir, { recursive: true });
    const temp = `${this.path}.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(temp, bytes);
    await Deno.rename(temp, this.path);
    const manifest: Manifest = { key: this.key, sha256: await sha256Hex(bytes), bytes: bytes.length };
    const tempManifest = `${this.#manifestPath}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(tempManifest, JSON.stringify(manifest));
    await Deno.rename(tempManifest, this.#manifestPath);
    // Snapshots of other versions or configurations are stale (31 MB each); keep only this one.
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.name.startsWith(this.key) && /\.(bin|json)$/.test(entry.name)) {
        await Deno.remove(join(this.dir, entry.name)).catch(() => {});
      }
    }
    return { path: this.path, sha256: manifest.sha256 };
  }

  /** Removes a snapshot that failed to boot. */
  async discard(): Promise<void> {
    await Deno.remove(this.#manifestPath).catch(() => {});
    await Deno.remove(this.path).catch(() => {});
  }
}
