/**
 * The one result shape both tools return, its schema, and how it is rendered for a model.
 *
 * @module
 */
import { z } from "zod";
import { ICONS } from "./icon.ts";

/** How a run ended. */
export type RunStatus = "ok" | "error" | "timeout" | "cancelled" | "crashed";

/** What a run produced. Outcomes of user code are values here, never exceptions. */
export interface RunResult {
  status: RunStatus;
  stdout: string;
  stderr: string;
  /**
   * Exit code of the run's process: JavaScript's, or the Python interpreter's when it ended during the call.
   * `null` when the process was killed, when no process ran, and for Python calls (a long-lived interpreter
   * runs them; it does not exit).
   */
  exitCode: number | null;
  durationMs: number;
  timedOut: boolean;
  cancelled: boolean;
  /** Whether stdout or stderr was cut at the output limit. */
  truncated: boolean;
  /** Whether the run was killed for exceeding the memory limit. */
  memoryExceeded: boolean;
  /** Whether the run was killed for filling more disk than its quota. */
  diskExceeded?: boolean;
  /** A sentence for the model when the run did not simply succeed: what happened, what to do next. */
  message?: string;
  /** Images, rich text and files the run produced (returned as content items, not structured content). */
  attachments?: Attachment[];
  /** Output the result had to leave out (a cut stream, an attachment over the limits), kept as resources. */
  keptOutputs?: KeptOutputLink[];
}

/** Where the whole of a cut stream, or an attachment too large to inline, can be read (`resources/read`). */
export interface KeptOutputLink {
  /** What was kept: a stream, or an attachment's name. */
  of: "stdout" | "stderr" | string;
  uri: string;
  mimeType: string;
  /** Bytes kept. */
  bytes: number;
  /** Bytes it had; more than `bytes` when the per-run keep limit stopped the keeping. */
  totalBytes: number;
}

/** Something a run returns besides text: an image, rich text (HTML, Markdown) or a file. */
export interface Attachment {
  mimeType: string;
  /** A file name, for files a run wrote. */
  name?: string;
  /** Base64 bytes (images, binary files). */
  data?: string;
  /** Text (SVG, HTML, Markdown, text files). */
  text?: string;
}

/** Caps on what one run may return as attachments. */
export const ATTACHMENT_LIMITS = {
  count: 20,
  /**
   * What all inline attachments of one result may take in the message as sent (base64, JSON escapes and
   * UTF-8 included), so that with capped stdout and stderr a result stays well under the 10 MiB that MCP
   * clients read at most (the SDK's stdio client closes the connection beyond that).
   */
  serializedBytes: 4 * 1024 * 1024,
} as const;

/**
 * Keeps attachments within {@linkcode ATTACHMENT_LIMITS}; returns them, those left out (`overflow`), and a
 * note naming what was left out.
 */
export function capAttachments(
  attachments: Attachment[],
): { kept: Attachment[]; overflow: Attachment[]; note?: string } {
  const kept: Attachment[] = [];
  const overflow: Attachment[] = [];
  const dropped: string[] = [];
  let total = 0;
  for (const attachment of attachments) {
    const size = serializedBytes(attachment);
    if (kept.length >= ATTACHMENT_LIMITS.count || total + size > ATTACHMENT_LIMITS.serializedBytes) {
      dropped.push(`${attachment.name ?? attachment.mimeType} (${attachmentBytes(attachment)} bytes)`);
      overflow.push(attachment);
      continue;
    }
    total += size;
    kept.push(attachment);
  }
  if (!dropped.length) return { kept, overflow };
  return { kept, overflow, note: `Not returned inline (${ATTACHMENT_LIMIT_TEXT}): ${dropped.join(", ")}.` };
}

/** The inline limits, in words. */
export const ATTACHMENT_LIMIT_TEXT = `over ${ATTACHMENT_LIMITS.count} attachments, or over ` +
  `${ATTACHMENT_LIMITS.serializedBytes / 1024 / 1024} MiB in all as sent`;

/** What an attachment takes in the JSON message: its base64, or its text as JSON-escaped UTF-8. */
export function serializedBytes(attachment: Attachment): number {
  return attachment.data !== undefined
    ? attachment.data.length
    : new TextEncoder().encode(JSON.stringify(attachment.text ?? "")).byteLength;
}

/** The size of an attachment's content: its decoded bytes, or its text's UTF-8 bytes. */
export function attachmentBytes(attachment: Attachment): number {
  if (attachment.data === undefined) return new TextEncoder().encode(attachment.text ?? "").byteLength;
  // Base64 carries 3 bytes in every 4 characters; each trailing "=" stands for one byte that is not there.
  const data = attachment.data.replace(/\s+/g, "");
  const padding = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0;
  return Math.floor(data.length * 3 / 4) - padding;
}

/** A result for a run that produced nothing: `status` and `message`, every flag false unless given. */
export function emptyResult(status: RunStatus, message: string): RunResult {
  return {
    status,
    stdout: "",
    stderr: "",
    exitCode: null,
    durationMs: 0,
    timedOut: status === "timeout",
    cancelled: status === "cancelled",
    truncated: false,
    memoryExceeded: false,
    message,
  };
}

/** `outputSchema` of both tools: the `structuredContent` of every result. */
export const runResultSchema = {
  status: z.enum(["ok", "error", "timeout", "cancelled", "crashed"]).describe(
    "ok: finished normally; error: the code failed; timeout: killed at the time limit; " +
      "cancelled: the client cancelled; crashed: killed for memory or by a signal",
  ),
  stdout: z.string(),
  stderr: z.string(),
  exitCode: z.number().int().nullable(),
  durationMs: z.number(),
  timedOut: z.boolean(),
  cancelled: z.boolean(),
  truncated: z.boolean(),
  memoryExceeded: z.boolean(),
  diskExceeded: z.boolean().optional().describe("true when the run was killed for exceeding its disk quota"),
  message: z.string().optional(),
  result: z.string().optional().describe("Python: repr() of the last expression's value"),
  resultJson: z.unknown().optional().describe("Python: the same value as JSON, when it is JSON-able"),
  stateReset: z.boolean().optional().describe(
    "Python: true when the interpreter was restarted during the call and the session's state is gone",
  ),
  installed: z.array(z.string()).optional().describe("Python: packages installed for this call"),
  attachments: z.array(z.object({ mimeType: z.string(), name: z.string().optional(), bytes: z.number() }))
    .optional().describe("Images and files returned as content items after the text"),
  keptOutputs: z.array(z.object({
    of: z.string(),
    uri: z.string(),
    mimeType: z.string(),
    bytes: z.number(),
    totalBytes: z.number(),
  })).optional().describe(
    "Output the result had to leave out (a stream cut at the limit, a file too large to return), kept for " +
      "a while: read it with resources/read, or a byte range of it with ?offset=N&length=N",
  ),
};

/** One MCP content item. */
export type ContentItem =
  | { type: "text"; text: string }
  | { type: "image"; data: string; mimeType: string }
  | {
    type: "resource_link";
    uri: string;
    name: string;
    mimeType: string;
    size: number;
    description: string;
    icons: Array<{ src: string; mimeType: string; sizes: string[] }>;
  }
  | {
    type: "resource";
    resource: { uri: string; mimeType: string; text: string } | {
      uri: string;
      mimeType: string;
      blob: string;
    };
  };

/** An MCP `CallToolResult` carrying a run's result. */
export interface RunToolResult {
  [key: string]: unknown;
  content: ContentItem[];
  structuredContent: Record<string, unknown>;
  isError: boolean;
}

const CLIENT_IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function contentItem(attachment: Attachment, index: number): ContentItem {
  const uri = `output:///${encodeURIComponent(attachment.name ?? `display-${index + 1}`)}`;
  if (attachment.data !== undefined) {
    return CLIENT_IMAGE_TYPES.has(attachment.mimeType)
      ? { type: "image", data: attachment.data, mimeType: attachment.mimeType }
      : { type: "resource", resource: { uri, mimeType: attachment.mimeType, blob: attachment.data } };
  }
  const text = attachment.text ?? "";
  return attachment.mimeType === "text/markdown" || attachment.mimeType === "text/html"
    ? { type: "text", text }
    : { type: "resource", resource: { uri, mimeType: attachment.mimeType, text } };
}

function linkItem(link: KeptOutputLink): ContentItem {
  return {
    type: "resource_link",
    uri: link.uri,
    name: link.uri.slice(link.uri.lastIndexOf("/") + 1),
    mimeType: link.mimeType,
    size: link.bytes,
    description: keptDescription(link),
    icons: ICONS.map((icon) => ({ ...icon, sizes: [...icon.sizes] })),
  };
}

/** One sentence on a kept output: what it is, how big, and how to read it. */
function keptDescription(link: KeptOutputLink): string {
  const what = link.of === "stdout" || link.of === "stderr" ? `The full ${link.of}` : `${link.of} in full`;
  const partly = link.bytes < link.totalBytes ? ` (its first ${link.bytes} of ${link.totalBytes} bytes)` : "";
  return `${what}${partly} is kept as ${link.uri} (${link.bytes} bytes): read it with resources/read, or a ` +
    "part of it by adding ?offset=N&length=N (bytes).";
}

/**
 * Renders a result as short text for the model plus the same fields as structured content.
 *
 * @example
 * ```ts
 * toToolResult({ status: "ok", stdout: "1\n", stderr: "", exitCode: 0, durationMs: 20,
 *   timedOut: false, cancelled: false, truncated: false, memoryExceeded: false });
 * ```
 */
export function toToolResult(result: RunResult & { result?: string; stateReset?: boolean }): RunToolResult {
  const { attachments, ...fields } = result;
  const structured: Record<string, unknown> = { ...fields };
  if (attachments?.length) {
    structured.attachments = attachments.map((a) => ({
      mimeType: a.mimeType,
      ...(a.name ? { name: a.name } : {}),
      bytes: attachmentBytes(a),
    }));
  }
  return {
    content: [
      { type: "text", text: renderText(result) },
      ...(attachments ?? []).map(contentItem),
      ...(result.keptOutputs ?? []).map(linkItem),
    ],
    structuredContent: structured,
    isError: result.status !== "ok",
  };
}

/**
 * The text a model reads: a status line, the message, then the value and each non-empty stream.
 *
 * The status line states only what the structured fields say (an exit code only when there is one, which a
 * Python call never has unless its interpreter ended), so it cannot contradict them; whether anything was
 * killed or interrupted is said by the message, which the tool that produced the result wrote.
 *
 * @example
 * ```ts
 * renderText({ status: "ok", stdout: "", stderr: "", exitCode: null, durationMs: 23, timedOut: false,
 *   cancelled: false, truncated: false, memoryExceeded: false, result: "45", stateReset: false });
 * // "status: ok (23 ms)\n--- result ---\n45"
 * ```
 */
export function renderText(result: RunResult & { result?: string; stateReset?: boolean }): string {
  const facts = [
    ...(result.exitCode !== null ? [`exit code ${result.exitCode}`] : []),
    ...(result.memoryExceeded ? ["memory limit exceeded"] : []),
    ...(result.truncated ? ["output truncated"] : []),
    ...(result.stateReset ? ["Python state reset"] : []),
    `${result.durationMs} ms`,
  ];
  const parts = [`status: ${result.status} (${facts.join(", ")})`];
  if (result.message) parts.push(result.message);
  for (const link of result.keptOutputs ?? []) parts.push(keptDescription(link));
  if (result.result !== undefined) parts.push(`--- result ---\n${result.result}`);
  if (result.stdout) parts.push(`--- stdout ---\n${result.stdout.replace(/\n$/, "")}`);
  if (result.stderr) parts.push(`--- stderr ---\n${result.stderr.replace(/\n$/, "")}`);
  if (!result.stdout && !result.stderr && result.result === undefined) parts.push("(no output)");
  return parts.join("\n");
}
