/**
 * Serves an {@linkcode App} over stdio until the client goes away or the process is told to stop.
 *
 * @module
 */
import process from "node:process";
import type { App } from "./app.ts";
import { LineTransport } from "./stdio_transport.ts";

/**
 * Connects the app to stdin/stdout. When stdin closes, or on SIGTERM/SIGINT, every child is killed,
 * every temp directory removed, and the process exits.
 */
export async function serveStdio(app: App): Promise<void> {
  const shutdown = async (why: string) => {
    app.logger.log("debug", `shutting down: ${why}`);
    await app.close();
    Deno.exit(0);
  };
  process.stdin.on("end", () => shutdown("stdin closed"));
  process.stdin.on("close", () => shutdown("stdin closed"));
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    if (Deno.build.os === "windows" && signal !== "SIGINT") continue;
    Deno.addSignalListener(signal, () => shutdown(signal));
  }
  await app.server.connect(new LineTransport());
}
