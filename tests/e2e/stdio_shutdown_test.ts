/**
 * Over stdio, the server writes nothing once the client has closed stdin: a client that closed its end may
 * have stopped reading, and the MCP Python SDK 1.x `stdio_client` raises on exit when a line still arrives.
 * Checked on the raw byte stream, without an SDK in between.
 */
import assert from "node:assert/strict";
import { BIN, serverEnv } from "../_helpers.ts";

const encoder = new TextEncoder();
const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "eof-test", version: "0" } },
};
const INITIALIZED = { jsonrpc: "2.0", method: "notifications/initialized" };

/**
 * Starts the bin, sends `before` after the handshake, waits for the answers to the requests among them,
 * sends `atEof` and closes stdin at once; returns every line written after the last awaited answer.
 */
async function linesAfterEof(before: object[], atEof: object[] = []): Promise<string[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BIN],
    env: serverEnv(),
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const nextLine = async (): Promise<string | null> => {
    while (!buffer.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += value;
    }
    const newline = buffer.indexOf("\n");
    const line = buffer.slice(0, newline);
    buffer = buffer.slice(newline + 1);
    return line;
  };
  /** Reads lines until the answer to request `id`, skipping notifications. */
  const answerTo = async (id: number) => {
    for (let line = await nextLine(); line !== null; line = await nextLine()) {
      if ((JSON.parse(line) as { id?: unknown }).id === id) return;
    }
    assert.fail(`no answer to request ${id}`);
  };
  try {
    for (const message of [INIT, INITIALIZED, ...before]) {
      await writer.write(encoder.encode(JSON.stringify(message) + "\n"));
      if ("id" in message && typeof message.id === "number") await answerTo(message.id);
    }
    for (const message of atEof) await writer.write(encoder.encode(JSON.stringify(message) + "\n"));
    await writer.close();
    const after: string[] = [];
    for (let line = await nextLine(); line !== null; line = await nextLine()) after.push(line);
    if (buffer) after.push(buffer);
    const status = await child.status;
    assert.equal(status.code, 0, "the server did not exit cleanly");
    return after;
  } finally {
    await writer.close().catch(() => {});
    await reader.cancel().catch(() => {});
    await child.status;
  }
}

Deno.test("after stdin closes the server writes nothing, having been asked for no log level", async () => {
  assert.deepEqual(await linesAfterEof([]), []);
});

Deno.test("after stdin closes the server writes nothing, even with logging at debug", async () => {
  const setLevel = { jsonrpc: "2.0", id: 2, method: "logging/setLevel", params: { level: "debug" } };
  assert.deepEqual(await linesAfterEof([setLevel]), []);
});

Deno.test("a call still running when stdin closes is stopped without an answer on the closed stream", async () => {
  const call = {
    jsonrpc: "2.0",
    id: 2,
    method: "tools/call",
    params: {
      name: "run_javascript",
      arguments: { code: "await new Promise((r) => setTimeout(r, 60_000))" },
    },
  };
  assert.deepEqual(await linesAfterEof([], [call]), []);
});
