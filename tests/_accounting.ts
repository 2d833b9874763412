/**
 * Process accounting for fault tests: what a server holds (its descendant processes, its open files, the
 * directories below its TMPDIR), so a test can check that everything is back to the expected set.
 */
import { childPids, eventually } from "./_helpers.ts";

/** What a server holds at one moment. */
export interface Holdings {
  /** Every live descendant process. */
  processes: number[];
  /** Open file descriptors of the server process. */
  fds: number;
  /** Entries below the server's TMPDIR, two levels deep (its root, and the runs in it). */
  temp: string[];
}

/** Every live descendant of `pid` (Linux). */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const pending = [pid];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    for (const child of childPids(next)) {
      found.push(child);
      pending.push(child);
    }
  }
  return found;
}

/** What server `pid`, started with TMPDIR `tmp`, holds now. */
export function holdings(pid: number, tmp: string): Holdings {
  const temp: string[] = [];
  for (const root of Deno.readDirSync(tmp)) {
    temp.push(root.name);
    if (!root.isDirectory) continue;
    try {
      for (const run of Deno.readDirSync(`${tmp}/${root.name}`)) temp.push(`${root.name}/${run.name}`);
    } catch {
      // Removed meanwhile.
    }
  }
  return { processes: descendants(pid), fds: [...Deno.readDirSync(`/proc/${pid}/fd`)].length, temp };
}

/**
 * Waits until server `pid` holds no more than `baseline` plus `extra` processes (each with its three pipes
 * and its directory); throws with what is left over otherwise.
 */
export async function assertBackToBaseline(
  pid: number,
  tmp: string,
  baseline: Holdings,
  extra = 0,
  timeoutMs = 15_000,
): Promise<void> {
  let now = holdings(pid, tmp);
  const within = () => {
    now = holdings(pid, tmp);
    return now.processes.length <= baseline.processes.length + extra &&
      now.temp.length <= baseline.temp.length + extra &&
      // Pipes of a child still being reaped may linger a moment; a few fds of slack, never a trend.
      now.fds <= baseline.fds + 3 * extra + 2;
  };
  if (await eventually(within, timeoutMs)) return;
  throw new Error(
    `not back to baseline (+${extra}): processes ${baseline.processes.length} → ${now.processes.length}, ` +
      `fds ${baseline.fds} → ${now.fds}, temp ${baseline.temp.length} → ${now.temp.length} ` +
      `(${now.temp.filter((entry) => !baseline.temp.includes(entry)).join(", ")})`,
  );
}
