/**
 * Code mode's wire format: how a run asks the server to list or call the operator's upstream MCP tools,
 * and how the server answers. One JSON object per message; the JavaScript launcher sends them over its
 * Unix socket, the Python host over its JSON-lines channel.
 *
 * Security: the run is untrusted. Every message from it is parsed here with sizes and names bounded, and
 * is a request only: the server decides what to call, with which credentials, and answers only the run
 * that asked. Nothing in a request can name a URL, a command or a header.
 *
 * @module
 */
import { z } from "zod";

/** Bounds on what a run may send and receive. */
export const CODE_MODE_LIMITS = {
  /** Tool calls one run may make (failed ones count too). */
  maxCallsPerRun: 200,
  /** Bytes of tool results (as JSON) one run may receive in total. */
  maxResultBytesPerRun: 32 * 1024 * 1024,
  /** One request, as JSON text (the arguments are most of it). */
  maxRequestBytes: 1024 * 1024,
  /** Nesting of the arguments; deeper JSON is refused before anything re-serializes it recursively. */
  maxArgumentDepth: 64,
} as const;

/** Asks for the upstreams the run may use, with their tools. */
export interface McpListRequest {
  type: "mcp_list";
  id: number;
}

/** Asks for one tool call. */
export interface McpCallRequest {
  type: "mcp_call";
  id: number;
  server: string;
  tool: string;
  args: Record<string, unknown>;
}

/** Every request a run may send. */
export type SandboxMcpRequest = McpListRequest | McpCallRequest;

/** Why a list or call failed; each has a clear message beside it. */
export type McpErrorCode =
  /** No upstream of that name is configured. */
  | "unknown_server"
  /** The upstream has the tool, or may have, but the operator's allow-list leaves it out. */
  | "tool_not_allowed"
  /** The upstream has no tool of that name. */
  | "tool_not_found"
  /** The upstream could not be started or reached, or did not complete the MCP handshake. */
  | "start_failed"
  /** The upstream exited or dropped the connection during the call; the next call reconnects. */
  | "crashed"
  /** The call did not finish before the run's deadline. */
  | "timeout"
  /** The run was cancelled (or ended) while the call was in flight. */
  | "cancelled"
  /** The upstream answered with something that is not a valid tool result. */
  | "invalid_result"
  /** The upstream answered with a JSON-RPC error. */
  | "upstream_error"
  /** The run reached its limit on calls or on result bytes. */
  | "limit_exceeded"
  /** The server is shutting down. */
  | "closed"
  /** The request itself was malformed. */
  | "bad_request";

/** One upstream tool as a run sees it. */
export interface McpToolInfo {
  name: string;
  title?: string;
  description?: string;
  inputSchema: Record<string, unknown>;
  outputSchema?: Record<string, unknown>;
}

/** One upstream as a run sees it: its tools, or why they could not be listed. */
export interface McpServerInfo {
  name: string;
  tools: McpToolInfo[];
  /** Set when the upstream could not be reached; `tools` is then empty. */
  error?: string;
}

/** What a tool call gave back, rendered for a run. */
export interface McpCallValue {
  /** The result's `structuredContent`, when it has one. */
  structured?: unknown;
  /** Its text content items, joined with newlines. */
  text: string;
  /** The upstream said the tool failed (a result with `isError`), not the call. */
  isError: boolean;
  /** The whole `CallToolResult` as the upstream sent it. */
  raw: Record<string, unknown>;
}

/** The server's answer to one request. */
export type McpResultMessage =
  | { type: "mcp_result"; id: number; ok: true; value: McpServerInfo[] | McpCallValue }
  | { type: "mcp_result"; id: number; ok: false; error: { code: McpErrorCode; message: string } };

/** An error answer to request `id`. */
export function errorReply(id: number, code: McpErrorCode, message: string): McpResultMessage {
  return { type: "mcp_result", id, ok: false, error: { code, message } };
}

/**
 * The error answer to a raw request that will not be made (no upstreams, limits, a failed start); null
 * when it has no id to answer.
 *
 * @example
 * ```ts
 * const reply = refuseRequest('{"type":"mcp_list","id":7}', "limit_exceeded", "too many");
 * if (reply?.id !== 7 || reply.ok) throw new Error("answers the request's id with an error");
 * if (refuseRequest("not json", "limit_exceeded", "too many") !== null) throw new Error("no id, no answer");
 * ```
 */
export function refuseRequest(
  request: unknown,
  code: McpErrorCode,
  message: string,
): McpResultMessage | null {
  const { id } = parseSandboxMcpRequest(request);
  return id === null ? null : errorReply(id, code, message);
}

const id = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Names are checked again against the configuration; these bounds keep logs and messages sane. */
const serverName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/);
const toolName = z.string().regex(/^[^\s\p{Cc}]{1,128}$/u);

/** The zod schema of a request from a run (to add to a union of a channel's messages). */
export const sandboxMcpRequestSchema: z.ZodType<SandboxMcpRequest> = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("mcp_list"), id }),
  z.strictObject({
    type: z.literal("mcp_call"),
    id,
    server: serverName,
    tool: toolName,
    args: z.record(z.string(), z.unknown()).refine(
      (args) => depthAtMost(args, CODE_MODE_LIMITS.maxArgumentDepth),
      `arguments nest deeper than ${CODE_MODE_LIMITS.maxArgumentDepth} levels`,
    ),
  }),
]);

/** A request that could not be accepted, with the id to answer when it had a usable one. */
export interface RejectedRequest {
  id: number | null;
  message: string;
}

/**
 * Parses one message from a run: a line of JSON text, or a value a channel already parsed.
 *
 * @example
 * ```ts
 * const parsed = parseSandboxMcpRequest('{"type":"mcp_call","id":1,"server":"notes","tool":"search","args":{}}');
 * if (!("type" in parsed)) console.log(parsed.message); // answer with a bad_request error if parsed.id !== null
 * else if (parsed.type === "mcp_call") console.log(parsed.tool); // "search"
 * ```
 */
export function parseSandboxMcpRequest(message: unknown): SandboxMcpRequest | RejectedRequest {
  let value = message;
  if (typeof message === "string") {
    // Characters, not bytes: a cheap first bound; UTF-8 is at most three bytes a UTF-16 unit.
    if (message.length > CODE_MODE_LIMITS.maxRequestBytes) {
      return { id: null, message: `request larger than ${CODE_MODE_LIMITS.maxRequestBytes} bytes` };
    }
    try {
      value = JSON.parse(message);
    } catch {
      return { id: null, message: "request is not JSON" };
    }
  }
  const parsed = sandboxMcpRequestSchema.safeParse(value);
  const requestId =
    typeof value === "object" && value !== null && "id" in value && id.safeParse(value.id).success
      ? (value.id as number)
      : null;
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    return { id: requestId, message: `malformed request: ${path}${issue?.message ?? "invalid"}` };
  }
  if (typeof message !== "string" && jsonBytes(parsed.data) > CODE_MODE_LIMITS.maxRequestBytes) {
    return { id: requestId, message: `request larger than ${CODE_MODE_LIMITS.maxRequestBytes} bytes` };
  }
  return parsed.data;
}

/** Whether `value` nests at most `limit` levels of arrays and objects (iterative, so any input is safe). */
function depthAtMost(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [node, depth] = item;
    if (typeof node !== "object" || node === null) continue;
    if (depth > limit) return false;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return true;
}

function jsonBytes(value: unknown): number {
  try {
    return new TextEncoder().encode(JSON.stringify(value)).length;
  } catch {
    return Infinity;
  }
}
