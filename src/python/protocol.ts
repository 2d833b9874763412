/**
 * Messages between the server and its Python host process: one JSON object per line, server → host on the
 * host's stdin, host → server on the host's stdout.
 *
 * Security: the host runs untrusted Python that can write to the host's stdout, so every message from the
 * host is validated here and treated as a claim about its own session only.
 *
 * @module
 */
import { z } from "zod";
import type { McpResultMessage } from "../code_mode_protocol.ts";

/** Sent once, first: how to boot Pyodide. */
export interface InitMessage {
  type: "init";
  /** File URL of `pyodide.mjs`. */
  pyodideUrl: string;
  /** Directory of the Pyodide runtime files (`pyodide.asm.wasm`, stdlib), with a trailing slash. */
  indexURL: string;
  /** The lock file of the Pyodide distribution in use (in the runtime directory or the package cache). */
  lockFilePath: string;
  /** Base URL Pyodide's loader fetches distribution packages from. */
  packageBaseUrl: string;
  /** The host's private directory, where Pyodide's loader keeps the wheels it fetched. */
  workDir: string;
  /** PEP 503/691 indexes micropip resolves other packages from. */
  indexUrls: string[];
  /** Python source of the helper module. */
  helper: string;
  outputLimitBytes: number;
  /** The operator's shared workspace, mounted at /workspace. */
  workspace?: { path: string; writable: boolean };
  /** A memory snapshot to boot from, and the sha256 it must have. */
  snapshotPath?: string;
  snapshotSha256?: string;
  /** Boot, define the helper (no package: a snapshot cannot hold one), write a snapshot to workDir, report it and exit. */
  makeSnapshot?: boolean;
}

/** Runs one call: install what it needs, then execute it. */
export interface RunMessage {
  type: "run";
  callId: number;
  code: string;
  packages: string[];
}

/** The server's answer to a host's `fetch` request. */
export interface FetchedMessage {
  type: "fetched";
  id: number;
  /** A file in the read-only package cache holding the body. */
  path?: string;
  status?: number;
  contentType?: string;
  error?: string;
  /** Not a package download: the host uses its own network (and permissions) for it. */
  passthrough?: boolean;
}

/** Every message the server sends (code mode's answers are `mcp_result` messages of code_mode_protocol.ts). */
export type ServerMessage = InitMessage | RunMessage | FetchedMessage | McpResultMessage;

const captured = z.object({ text: z.string(), truncated: z.boolean(), totalBytes: z.number() });

/** Output of a call as the host captured it. */
export interface CapturedText {
  text: string;
  truncated: boolean;
  totalBytes: number;
}

/** A call's report from the host. */
export interface DoneMessage {
  type: "done";
  callId: number;
  outcome: "ok" | "error" | "interrupted" | "install_error";
  stdout: CapturedText;
  stderr: CapturedText;
  result?: string;
  resultJson?: unknown;
  error?: string;
  installed?: string[];
  /** Imports of the code that could not be installed, and why (the code ran without them). */
  notInstalled?: Array<{ module: string; error: string }>;
  displays?: Array<{ mimeType: string; data?: string; text?: string }>;
}

/** Bytes a call wrote to stdout or stderr, as they come (base64), so the server can follow and keep them. */
export interface OutputMessage {
  type: "output";
  callId: number;
  stream: "stdout" | "stderr";
  data: string;
}

/** A validated message from a host. */
export type HostMessage =
  | { type: "ready"; bootMs: number }
  | { type: "fetch"; id: number; url: string; accept?: string }
  | { type: "progress"; callId: number; message: string }
  | OutputMessage
  | { type: "installing"; callId: number }
  | { type: "executing"; callId: number }
  | DoneMessage
  | { type: "fatal"; error: string }
  | { type: "snapshot"; path: string }
  /** Code mode: a request of the running call (`mcp_list` or `mcp_call`), validated where it is answered. */
  | { type: "mcp"; request: unknown };

/** Every message a host may send. */
const hostMessageSchema: z.ZodType<HostMessage> = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ready"), bootMs: z.number() }),
  z.object({
    type: z.literal("fetch"),
    id: z.number().int(),
    url: z.string(),
    accept: z.string().optional(),
  }),
  z.object({ type: z.literal("progress"), callId: z.number().int(), message: z.string() }),
  z.object({
    type: z.literal("output"),
    callId: z.number().int(),
    stream: z.enum(["stdout", "stderr"]),
    // The host sends at most 1 MiB (as base64) a message.
    data: z.string().max(2 * 1024 * 1024).regex(/^[A-Za-z0-9+/]*={0,2}$/),
  }),
  z.object({ type: z.literal("installing"), callId: z.number().int() }),
  z.object({ type: z.literal("executing"), callId: z.number().int() }),
  z.object({
    type: z.literal("done"),
    callId: z.number().int(),
    outcome: z.enum(["ok", "error", "interrupted", "install_error"]),
    stdout: captured,
    stderr: captured,
    result: z.string().optional(),
    resultJson: z.unknown().optional(),
    error: z.string().optional(),
    installed: z.array(z.string()).optional(),
    notInstalled: z.array(z.object({ module: z.string(), error: z.string() })).optional(),
    displays: z.array(
      z.object({ mimeType: z.string().max(100), data: z.string().optional(), text: z.string().optional() }),
    ).optional(),
  }),
  z.object({ type: z.literal("fatal"), error: z.string() }),
  z.object({ type: z.literal("snapshot"), path: z.string() }),
]);

/** Parses one line from a host; `null` for anything that is not a valid message. */
export function parseHostMessage(line: string): HostMessage | null {
  try {
    const value = JSON.parse(line) as { type?: unknown };
    if (value?.type === "mcp_list" || value?.type === "mcp_call") return { type: "mcp", request: value };
    const parsed = hostMessageSchema.safeParse(value);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
