/**
 * Symbolic links in the operator's workspace that lead out of it. The rule for both tools: a run never leaves
 * the workspace through a link. Python's view of the workspace does not follow such links; Deno would (the
 * operating system resolves links after Deno checked the path), so each JavaScript run gets the links denied.
 *
 * @module
 */
import { join } from "node:path";

/** Entries looked at in one scan; a larger workspace is scanned this far. */
const SCAN_LIMIT = 100_000;
const STALE_MS = 2000;

/** Paths each JavaScript run is denied in a workspace so that no link leads it out. */
export interface LinkDenials {
  /** Denied for reading and writing: links that lead out, and every link to a directory (through one, a
   * path could reach a link that leads out under a name that is not denied). */
  links: readonly string[];
  /** Denied for writing only: the directories holding a link that leads out, so that a run in a writable
   * workspace cannot rename them and reach the link under a new name. */
  holders: readonly string[];
}

/**
 * Finds the links below `root` that a run must not use.
 *
 * @example
 * ```ts
 * const dir = Deno.realPathSync(Deno.makeTempDirSync());
 * Deno.mkdirSync(`${dir}/sub`);
 * Deno.symlinkSync("/etc", `${dir}/sub/etc`);
 * const { links, holders } = await linksLeaving(dir);
 * if (links[0] !== `${dir}/sub/etc` || holders[0] !== `${dir}/sub`) throw new Error("the link leads out");
 * ```
 */
export async function linksLeaving(root: string): Promise<LinkDenials> {
  const realRoot = await Deno.realPath(root);
  const links: string[] = [];
  const holders = new Set<string>();
  const pending = [root];
  let seen = 0;
  for (let dir = pending.pop(); dir !== undefined && seen < SCAN_LIMIT; dir = pending.pop()) {
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (++seen > SCAN_LIMIT) break;
        const path = join(dir, entry.name);
        if (entry.isSymlink) {
          const target = await Deno.realPath(path).catch(() => null);
          const inside = target !== null && (target === realRoot || target.startsWith(`${realRoot}/`));
          const toDirectory = target !== null &&
            (await Deno.stat(target).catch(() => null))?.isDirectory === true;
          if (!inside || toDirectory) links.push(path);
          // Its directory and every one between it and the root.
          if (!inside) {
            for (
              let up = dir;
              up !== root && up.startsWith(`${root}/`);
              up = up.slice(0, up.lastIndexOf("/"))
            ) {
              holders.add(up);
            }
          }
        } else if (entry.isDirectory) {
          pending.push(path);
        }
      }
    } catch {
      // Unreadable: nothing below it can be reached through it either.
    }
  }
  return { links, holders: [...holders] };
}

/** The links of a workspace, rescanned in the background when a run asks and the last scan is stale. */
export class WorkspaceLinks {
  #denials: LinkDenials = { links: [], holders: [] };
  #at = 0;
  #scanning: Promise<void> | null = null;

  constructor(readonly root: string) {}

  /** The denials from the last scan; waits for the first scan, refreshes a stale one in the background. */
  async current(): Promise<LinkDenials> {
    if (this.#at === 0) await this.#scan();
    else if (Date.now() - this.#at > STALE_MS) this.#scan().catch(() => {});
    return this.#denials;
  }

  #scan(): Promise<void> {
    return this.#scanning ??= linksLeaving(this.root).then((denials) => {
      this.#denials = denials;
    }).catch(() => {}).finally(() => {
      this.#at = Date.now();
      this.#scanning = null;
    });
  }
}
