/**
 * What every tool file shares: the dependencies a tool is registered with, the arguments both tools take,
 * and the wrapper that turns a runner's result into an MCP tool result while reporting progress.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Config } from "../config.ts";
import type { JavaScriptCall } from "../javascript/runner.ts";
import type { PythonCall, PythonRunResult } from "../python/session.ts";
import { type RunResult, type RunToolResult, toToolResult } from "../result.ts";
import type { Runner, RunOptions } from "../runner.ts";

/** What the tools run on. */
export interface ToolDeps {
  config: Config;
  javascript: Runner<JavaScriptCall>;
  python: Runner<PythonCall, PythonRunResult>;
}

/** A tool file's one export: registers the tool on a server. */
export type ToolRegistration = (server: McpServer, deps: ToolDeps) => void;

/** The `code` argument, with the configured size cap. */
export function codeArgument(config: Config): z.ZodString {
  return z.string()
    .min(1, "code is empty: pass the program to run")
    .refine((code) => new TextEncoder().encode(code).byteLength <= config.maxCodeBytes, {
      message: `code is larger than ${config.maxCodeBytes} bytes; send a smaller program`,
    });
}

/** The optional `timeout_ms` argument, within the configured maximum. */
export function timeoutArgument(config: Config): z.ZodOptional<z.ZodNumber> {
  return z.number().int().min(1).max(config.maxTimeoutMs)
    .optional()
    .describe(`Time limit in milliseconds (default ${config.timeoutMs}, at most ${config.maxTimeoutMs}).`);
}

/** How often a long run reports that it is still running, when the client asked for progress. */
const HEARTBEAT_MS = 5000;

/** The part of a request's context used here. */
export interface RequestContext {
  signal: AbortSignal;
  _meta?: { progressToken?: string | number };
  sendNotification(notification: {
    method: "notifications/progress";
    params: { progressToken: string | number; progress: number; message: string };
  }): Promise<void>;
}

/**
 * Runs `work` with the request's cancellation and, when the client sent a progressToken, progress lines
 * plus a heartbeat every few seconds; answers with the MCP tool result.
 */
export async function runForRequest(
  request: RequestContext,
  work: (options: RunOptions) => Promise<RunResult>,
): Promise<RunToolResult> {
  const report = progressReporter(request);
  if (!report) return toToolResult(await work({ signal: request.signal }));
  const started = Date.now();
  const timer = setInterval(
    () => report(`still running (${Math.round((Date.now() - started) / 1000)} s)`),
    HEARTBEAT_MS,
  );
  try {
    return toToolResult(await work({ signal: request.signal, onProgress: report }));
  } finally {
    clearInterval(timer);
  }
}

/** A function sending MCP progress notifications, or undefined when the client sent no progressToken. */
function progressReporter(request: RequestContext): ((message: string) => void) | undefined {
  const progressToken = request._meta?.progressToken;
  if (progressToken === undefined) return undefined;
  let progress = 0;
  return (message) => {
    request.sendNotification({
      method: "notifications/progress",
      params: { progressToken, progress: ++progress, message },
    }).catch(() => {});
  };
}
