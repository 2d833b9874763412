/**
 * Exiting cleanly on signals.
 *
 * @module
 */

/**
 * On SIGTERM, SIGINT or SIGHUP, runs `close` (kill every child, remove every temp directory) and exits.
 * Installed as soon as there are children, so a signal during start-up cleans up too.
 */
export function exitOnSignals(close: () => Promise<void>): void {
  let closing = false;
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    if (Deno.build.os === "windows" && signal !== "SIGINT") continue;
    Deno.addSignalListener(signal, async () => {
      if (closing) return;
      closing = true;
      await close();
      Deno.exit(0);
    });
  }
}
