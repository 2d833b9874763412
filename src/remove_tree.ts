/**
 * Removing a directory a sandboxed process wrote: the process may have taken away its own permissions
 * (`chmod 000` on a directory it filled), which stops a server that is not root from listing or emptying it.
 *
 * @module
 */
import { join } from "node:path";

/**
 * Removes `path` and everything below it, giving directories back their owner's permissions first when a
 * plain removal fails. Symbolic links are removed, never followed.
 *
 * @example
 * ```ts
 * const dir = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${dir}/locked/inner`, { recursive: true });
 * Deno.chmodSync(`${dir}/locked`, 0o000);
 * await removeTree(dir);
 * ```
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
    return;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
  }
  await restoreAccess(path);
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

/** Gives every real directory below `dir` (and `dir`) rwx for its owner, so it can be listed and emptied. */
async function restoreAccess(dir: string): Promise<void> {
  const pending = [dir];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    await Deno.chmod(next, 0o700).catch(() => {});
    try {
      for await (const entry of Deno.readDir(next)) {
        // A symbolic link is not a directory entry here, so chmod never follows one out of the tree.
        if (entry.isDirectory && !entry.isSymlink) pending.push(join(next, entry.name));
      }
    } catch {
      // Gone, or still unreadable: the removal below does what it can.
    }
  }
}
