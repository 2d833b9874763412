/**
 * MCP over stdin/stdout, one JSON-RPC message per line, answering what it cannot read.
 *
 * The SDK's stdio transport drops a line that is not valid JSON-RPC without a word; a client then waits
 * forever for an answer. This one answers such a line with a JSON-RPC error (parse error, or invalid
 * request with the request's id when it has one) and keeps reading.
 *
 * Two rules keep strict clients happy. Once stdin has ended nothing more is written: a client that closed
 * its end may have stopped reading, and the Python SDK 1.x `stdio_client` raises `BrokenResourceError` on
 * exit when a line arrives then. And until the client sends `logging/setLevel`, `notifications/message`
 * below {@linkcode DEFAULT_CLIENT_LOG_LEVEL} is not sent (after it, the SDK filters by the level set).
 *
 * @module
 */
import process from "node:process";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/shared/transport"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import { type JSONRPCMessage, JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import { DEFAULT_CLIENT_LOG_LEVEL, isAtLeast, MCP_LOG_LEVELS } from "./log.ts";

/** Longest line accepted; a longer one is answered with an error and skipped. */
const MAX_LINE_CHARS = 64 * 1024 * 1024;

/** A stdio transport for the server side. */
export class LineTransport implements Transport {
  onmessage?: (message: JSONRPCMessage) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;
  #buffer = "";
  #skipping = false;
  #decoder = new TextDecoder();
  #ended = false;
  #levelSet = false;

  readonly #onData = (chunk: Uint8Array) => {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, newline).replace(/\r$/, "");
      this.#buffer = this.#buffer.slice(newline + 1);
      if (this.#skipping) this.#skipping = false;
      else this.#handle(line);
    }
    if (this.#buffer.length > MAX_LINE_CHARS) {
      this.#buffer = "";
      this.#skipping = true;
      this.#reply(null, -32600, `Invalid Request: a message longer than ${MAX_LINE_CHARS} characters`);
    }
  };

  readonly #onError = (error: Error) => this.onerror?.(error);
  readonly #onEnd = () => this.#ended = true;

  start(): Promise<void> {
    process.stdin.on("data", this.#onData);
    process.stdin.on("error", this.#onError);
    process.stdin.on("end", this.#onEnd);
    process.stdin.on("close", this.#onEnd);
    return Promise.resolve();
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#stdinEnded() || this.#belowDefaultLevel(message)) return Promise.resolve();
    return new Promise((resolve) => {
      if (process.stdout.write(JSON.stringify(message) + "\n")) resolve();
      else process.stdout.once("drain", () => resolve());
    });
  }

  close(): Promise<void> {
    process.stdin.off("data", this.#onData);
    process.stdin.off("error", this.#onError);
    process.stdin.off("end", this.#onEnd);
    process.stdin.off("close", this.#onEnd);
    this.onclose?.();
    return Promise.resolve();
  }

  /** Whether stdin has ended, also inside other "end" listeners that run before this transport's. */
  #stdinEnded(): boolean {
    return this.#ended || process.stdin.readableEnded || process.stdin.destroyed;
  }

  /** Whether `message` is a log message the client has not asked for (it set no level yet). */
  #belowDefaultLevel(message: JSONRPCMessage): boolean {
    if (this.#levelSet || !("method" in message) || message.method !== "notifications/message") return false;
    return !isAtLeast(String(message.params?.level), DEFAULT_CLIENT_LOG_LEVEL);
  }

  #handle(line: string): void {
    if (!line.trim()) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return this.#reply(null, -32700, "Parse error: the line is not valid JSON");
    }
    const checked = JSONRPCMessageSchema.safeParse(parsed);
    if (checked.success) {
      const data = checked.data;
      if ("method" in data && data.method === "logging/setLevel") {
        // Only a level the SDK accepts takes over the filtering; after an invalid one the default stays.
        this.#levelSet ||= (MCP_LOG_LEVELS as readonly unknown[]).includes(data.params?.level);
      }
      return this.onmessage?.(data);
    }
    const id = (parsed as { id?: unknown } | null)?.id;
    this.#reply(
      typeof id === "string" || typeof id === "number" ? id : null,
      -32600,
      "Invalid Request: not a JSON-RPC 2.0 message this server understands",
    );
  }

  #reply(id: string | number | null, code: number, message: string): void {
    if (this.#stdinEnded()) return;
    // JSON-RPC answers an unreadable request with id null; the SDK's types do not allow that, so write it.
    process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id, error: { code, message } }) + "\n");
  }
}
