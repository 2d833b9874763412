/**
 * Serves an {@linkcode App} over stdio until the client goes away or the process is told to stop.
 *
 * @module
 */
import process from "node:process";
import type { App } from "./app.ts";
import { LineTransport } from "./stdio_transport.ts";

/**
 * Connects the app to stdin/stdout. When stdin closes, every child is killed, every temp directory
 * removed, and the process exits (signals: see signals.ts).
 */
export async function serveStdio(app: App): Promise<void> {
  // No message to the client here: it closed stdin and may have stopped reading stdout (see LineTransport).
  const shutdown = async () => {
    await app.close();
    Deno.exit(0);
  };
  process.stdin.on("end", shutdown);
  process.stdin.on("close", shutdown);
  await app.session.server.connect(new LineTransport());
}
