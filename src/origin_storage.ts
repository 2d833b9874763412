/**
 * Web storage (localStorage, the Cache API) of sandboxed processes.
 *
 * Deno keeps it in `<DENO_DIR>/location_data/`, keyed by origin, outside any permission check, and every
 * process with the same main module shares it. Security: without a private origin per process, one run
 * could leave data there for every later run and session to read.
 *
 * @module
 */
import { join } from "node:path";
import { sha256HexSync } from "./sha256.ts";

/** A fresh origin no other process uses, for `deno run --location`. */
export function privateOrigin(): string {
  return `https://${crypto.randomUUID()}.sandbox.invalid`;
}

/** Where Deno keeps what a process with `origin` stores (localStorage; the Cache API). */
export function originStorageDirs(denoDir: string, origin: string): string[] {
  const key = sha256HexSync(origin);
  return [join(denoDir, "location_data", key), join(denoDir, "location_data", "web_cache", key)];
}

/** Removes what a process with `origin` stored in Deno's location data. */
export async function removeOriginStorage(denoDir: string, origin: string): Promise<void> {
  for (const dir of originStorageDirs(denoDir, origin)) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
