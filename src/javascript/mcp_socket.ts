/**
 * Code mode's channel for one JavaScript run: a Unix socket in the run's own directory, which only that run
 * may open (its only added permission is `--allow-net=unix:<this socket>`), carrying JSON lines of
 * `code_mode_protocol.ts`. Every request is answered by the run's view of the upstreams.
 *
 * @module
 */
import {
  errorReply,
  type McpResultMessage,
  parseSandboxMcpRequest,
  refuseRequest,
} from "../code_mode_protocol.ts";
import type { RunUpstreams } from "../upstreams.ts";
import { MAX_REQUESTS_PER_RUN, RequestGate } from "../code_mode.ts";

/** Bytes a request line may have before the connection is dropped. */
const MAX_LINE_BYTES = 2 * 1024 * 1024;

/** Listens at `path` for the run; answers through `view()` (made at the first request). */
export function serveRunSocket(path: string, view: () => Promise<RunUpstreams>): { close(): Promise<void> } {
  const listener = Deno.listen({ transport: "unix", path });
  // One budget for the run, whatever number of connections it opens.
  const gate = new RequestGate();
  const connections = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      connections.add(conn);
      serveConnection(conn, view, gate).catch(() => {}).finally(() => {
        connections.delete(conn);
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      });
    }
  })().catch(() => {});
  return {
    async close() {
      listener.close();
      for (const conn of connections) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await serving;
      await Deno.remove(path).catch(() => {});
    },
  };
}

/** The answer to a request when the upstreams could not even be loaded. */
function failure(line: string, error: unknown): McpResultMessage | null {
  return refuseRequest(line, "start_failed", String((error as Error)?.message ?? error));
}

async function serveConnection(
  conn: Deno.Conn,
  view: () => Promise<RunUpstreams>,
  gate: RequestGate,
): Promise<void> {
  const encoder = new TextEncoder();
  let buffer = "";
  let writing = Promise.resolve();
  for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    if (buffer.length > MAX_LINE_BYTES) return;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      // Security: with the most requests in flight the socket is not read; past the budget the run is cut off.
      const release = await gate.acquire();
      if (!release) {
        const { id } = parseSandboxMcpRequest(line);
        if (id !== null) {
          await writing;
          await write(conn, encoder.encode(JSON.stringify(spentReply(id)) + "\n")).catch(() => {});
        }
        return;
      }
      // Requests are answered as they finish; each answer is one line, written whole, in turn.
      (async () => {
        const reply = await view().then((run) => run.handle(line), (error) => failure(line, error));
        if (!reply) return;
        const bytes = encoder.encode(JSON.stringify(reply) + "\n");
        writing = writing.then(() => write(conn, bytes)).catch(() => {});
        await writing;
      })().finally(release);
    }
  }
}

async function write(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  const writer = conn.writable.getWriter();
  try {
    await writer.write(bytes);
  } finally {
    writer.releaseLock();
  }
}

/** The answer once a run has sent all the requests it may. */
export function spentReply(id: number): McpResultMessage {
  return errorReply(
    id,
    "limit_exceeded",
    `this run sent ${MAX_REQUESTS_PER_RUN} requests to its MCP channel, the most a run may send`,
  );
}
