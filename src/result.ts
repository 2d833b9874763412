/**
 * The one result shape both tools return, its schema, and how it is rendered for a model.
 *
 * @module
 */
import { z } from "zod";

/** How a run ended. */
export type RunStatus = "ok" | "error" | "timeout" | "cancelled" | "crashed";

/** What a run produced. Outcomes of user code are values here, never exceptions. */
export interface RunResult {
  status: RunStatus;
  stdout: string;
  stderr: string;
  /** Exit code of the run's process; `null` when it was killed. */
  exitCode: number | null;
  durationMs: number;
  timedOut: boolean;
  cancelled: boolean;
  /** Whether stdout or stderr was cut at the output limit. */
  truncated: boolean;
  /** Whether the run was killed for exceeding the memory limit. */
  memoryExceeded: boolean;
  /** A sentence for the model when the run did not simply succeed: what happened, what to do next. */
  message?: string;
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
  message: z.string().optional(),
  result: z.string().optional().describe("Python: repr() of the last expression's value"),
  resultJson: z.unknown().optional().describe("Python: the same value as JSON, when it is JSON-able"),
  stateReset: z.boolean().optional().describe(
    "Python: true when the interpreter was restarted during the call and the session's state is gone",
  ),
  installed: z.array(z.string()).optional().describe("Python: packages installed for this call"),
};

/** An MCP `CallToolResult` carrying a run's result. */
export interface RunToolResult {
  [key: string]: unknown;
  content: Array<{ type: "text"; text: string }>;
  structuredContent: Record<string, unknown>;
  isError: boolean;
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
export function toToolResult(result: RunResult & { result?: string }): RunToolResult {
  return {
    content: [{ type: "text", text: renderText(result) }],
    structuredContent: { ...result },
    isError: result.status !== "ok",
  };
}

/** The text a model reads: a status line, then each non-empty stream. */
export function renderText(result: RunResult & { result?: string }): string {
  const exit = result.exitCode === null ? "killed" : `exit code ${result.exitCode}`;
  const parts = [`status: ${result.status} (${exit}, ${result.durationMs} ms)`];
  if (result.message) parts.push(result.message);
  if (result.result !== undefined) parts.push(`--- result ---\n${result.result}`);
  if (result.stdout) parts.push(`--- stdout ---\n${result.stdout.replace(/\n$/, "")}`);
  if (result.stderr) parts.push(`--- stderr ---\n${result.stderr.replace(/\n$/, "")}`);
  if (!result.stdout && !result.stderr && result.result === undefined) parts.push("(no output)");
  return parts.join("\n");
}
