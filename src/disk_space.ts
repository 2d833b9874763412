/**
 * Free space where runs are prepared, so a nearly full disk gets a clear answer instead of an obscure failure
 * halfway through preparing a run. Measuring spawns `df`, so the hot path reads the last measurement and
 * refreshes it in the background.
 *
 * @module
 */

/** Below this, a run is not prepared: there would be no room for its files. */
export const MIN_FREE_BYTES = 1024 * 1024;
const STALE_MS = 2000;

const known = new Map<string, { at: number; bytes: number | null; refreshing?: Promise<number | null> }>();

/** Free bytes on the file system holding `dir`, measured now with `df`; null when unknown. */
export function measureFreeBytes(dir: string): Promise<number | null> {
  const entry = known.get(dir) ?? { at: 0, bytes: null };
  known.set(dir, entry);
  return entry.refreshing ??= (async () => {
    let bytes: number | null = null;
    try {
      const { stdout, success } = await new Deno.Command("df", {
        args: ["-Pk", dir],
        stdout: "piped",
        stderr: "null",
        env: { LC_ALL: "C" },
      }).output();
      // "Filesystem 1024-blocks Used Available Capacity Mounted-on", then one line.
      const available = Number(new TextDecoder().decode(stdout).trim().split("\n").at(-1)?.split(/\s+/)[3]);
      if (success && Number.isFinite(available)) bytes = available * 1024;
    } catch {
      // No df here: unknown.
    }
    Object.assign(entry, { at: Date.now(), bytes, refreshing: undefined });
    return bytes;
  })();
}

/** The last measurement for `dir` (null when unknown), refreshed in the background when it is stale. */
export function lastFreeBytes(dir: string): number | null {
  const entry = known.get(dir);
  if (!entry || Date.now() - entry.at > STALE_MS) measureFreeBytes(dir).catch(() => {});
  return entry?.bytes ?? null;
}

/**
 * A sentence for the model when the disk is too full to prepare a run, from a fresh measurement when the
 * last one (or `measureNow`) says it may be; null when there is room.
 */
export async function diskFullMessage(dir: string, measureNow = false): Promise<string | null> {
  const last = lastFreeBytes(dir);
  if (!measureNow && (last === null || last >= MIN_FREE_BYTES)) return null;
  // A measurement already under way may predate space just freed: wait for it, then measure again.
  await known.get(dir)?.refreshing;
  const free = await measureFreeBytes(dir);
  if (free === null || free >= MIN_FREE_BYTES) return null;
  return `The server's disk is nearly full (${
    Math.floor(free / 1024)
  } KiB free where runs are prepared), so ` +
    "the run was not started. This is not caused by your code; try again later, or tell the operator.";
}
