/**
 * Exiting cleanly on signals.
 *
 * @module
 */

/** What can be changed after the signal handlers are installed. */
export interface SignalExit {
  /**
   * Makes SIGTERM run `drain` (stop taking work, let work in flight finish) before closing; SIGINT, SIGHUP,
   * or a second signal during the drain still close at once.
   */
  drainOnTerm(drain: () => Promise<void>): void;
}

/**
 * On SIGTERM, SIGINT or SIGHUP, runs `close` (kill every child, remove every temp directory) and exits.
 * Installed as soon as there are children, so a signal during start-up cleans up too.
 *
 * @example
 * ```ts
 * import type { HttpServer } from "./http.ts";
 * import type { Runtime } from "./runtime.ts";
 * function example(runtime: Runtime, served: HttpServer) {
 *   const signals = exitOnSignals(() => runtime.close());
 *   // Over HTTP: a rolling restart loses no result of a call in flight.
 *   signals.drainOnTerm(() => served.drain(30_000));
 * }
 * ```
 */
export function exitOnSignals(close: () => Promise<void>): SignalExit {
  let drain: (() => Promise<void>) | undefined;
  let state: "running" | "draining" | "closing" = "running";
  const closeAndExit = async () => {
    if (state === "closing") return;
    state = "closing";
    await close();
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    if (Deno.build.os === "windows" && signal !== "SIGINT") continue;
    Deno.addSignalListener(signal, async () => {
      if (signal === "SIGTERM" && drain && state === "running") {
        state = "draining";
        await drain().catch(() => {});
      }
      await closeAndExit();
    });
  }
  return {
    drainOnTerm(next) {
      drain = next;
    },
  };
}
