/**
 * Diagnostics of the server. In a stdio server stdout is the protocol stream, so this is the only
 * place that prints, and it prints to stderr.
 *
 * @module
 */

/** Severity of a diagnostic line. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Writes one diagnostic line to stderr. */
export function log(level: LogLevel, message: string): void {
  const prefix = level === "info" ? "" : `${level}: `;
  console.error(`[code-runner-mcp] ${prefix}${message}`);
}
