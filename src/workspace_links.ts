/**
 * Symbolic links in the operator's workspace that lead out of it. The rule for both tools: a run never leaves
 * the workspace through a link. Python's view of the workspace does not follow such links; Deno would (the
 * operating system resolves links after Deno checked the path), so each JavaScript run gets the links denied.
 *
 * @module
 */
import { join, relative } from "node:path";

/** Entries looked at in one scan; a larger workspace is scanned this far. */
const SCAN_LIMIT = 100_000;
const STALE_MS = 2000;

/**
 * Finds the links below `root` whose target is outside it (or cannot be resolved).
 *
 * @example
 * ```ts
 * const dir = Deno.realPathSync(Deno.makeTempDirSync());
 * Deno.symlinkSync("/etc", `${dir}/etc`);
 * if ((await linksLeaving(dir))[0] !== `${dir}/etc`) throw new Error("the link leaves the workspace");
 * ```
 */
export async function linksLeaving(root: string): Promise<string[]> {
  const realRoot = await Deno.realPath(root);
  const found: string[] = [];
  const pending = [root];
  let seen = 0;
  for (let dir = pending.pop(); dir !== undefined && seen < SCAN_LIMIT; dir = pending.pop()) {
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (++seen > SCAN_LIMIT) break;
        const path = join(dir, entry.name);
        if (entry.isSymlink) {
          const target = await Deno.realPath(path).catch(() => null);
          const inside = target !== null && !relative(realRoot, target).startsWith("..") &&
            target.startsWith(realRoot);
          if (!inside) found.push(path);
        } else if (entry.isDirectory) {
          pending.push(path);
        }
      }
    } catch {
      // Unreadable: nothing below it can be reached through it either.
    }
  }
  return found;
}

/** The links leaving a workspace, rescanned in the background when a run asks and the last scan is stale. */
export class WorkspaceLinks {
  #links: string[] = [];
  #at = 0;
  #scanning: Promise<void> | null = null;

  constructor(readonly root: string) {}

  /** The links from the last scan; waits for the first scan, refreshes a stale one in the background. */
  async current(): Promise<readonly string[]> {
    if (this.#at === 0) await this.#scan();
    else if (Date.now() - this.#at > STALE_MS) this.#scan().catch(() => {});
    return this.#links;
  }

  #scan(): Promise<void> {
    return this.#scanning ??= linksLeaving(this.root).then((links) => {
      this.#links = links;
    }).catch(() => {}).finally(() => {
      this.#at = Date.now();
      this.#scanning = null;
    });
  }
}
