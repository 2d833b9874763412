/**
 * Diagnostics of the server: to stderr (in a stdio server stdout is the protocol stream, so this is the
 * only place that prints) and, as MCP `notifications/message`, to every connected client at the level it
 * asked for with `logging/setLevel`.
 *
 * @module
 */

/** Severity of a diagnostic, as MCP names them. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** MCP's logging levels, least severe first. */
export const MCP_LOG_LEVELS = [
  "debug",
  "info",
  "notice",
  "warning",
  "error",
  "critical",
  "alert",
  "emergency",
] as const;

/**
 * The level a client gets `notifications/message` at until it sends `logging/setLevel` (the README says
 * so): MCP sets no default, and some clients treat any message as something to show or fail on.
 */
export const DEFAULT_CLIENT_LOG_LEVEL: LogLevel = "info";

/**
 * Whether a message at `level` reaches a client that asked for `minimum`; unknown levels count as the most
 * severe, so nothing is lost by a typo.
 *
 * @example
 * ```ts
 * isAtLeast("debug", DEFAULT_CLIENT_LOG_LEVEL); // false
 * isAtLeast("warning", "info"); // true
 * ```
 */
export function isAtLeast(level: string, minimum: string): boolean {
  const rank = (name: string) => {
    const index = (MCP_LOG_LEVELS as readonly string[]).indexOf(name);
    return index < 0 ? MCP_LOG_LEVELS.length : index;
  };
  return rank(level) >= rank(minimum);
}

/** Where diagnostics go besides stderr, e.g. an MCP session. */
export type LogSink = (level: LogLevel, message: string) => void;

/**
 * Writes diagnostics to stderr and to the sinks added to it.
 *
 * @example
 * ```ts
 * const logger = new Logger();
 * const seen: string[] = [];
 * const remove = logger.addSink((level, message) => seen.push(`${level}: ${message}`));
 * logger.log("warning", "the Python snapshot did not boot"); // also printed on stderr
 * remove();
 * ```
 */
export class Logger {
  #sinks = new Set<LogSink>();

  /** Adds a sink; returns the function that removes it. */
  addSink(sink: LogSink): () => void {
    this.#sinks.add(sink);
    return () => this.#sinks.delete(sink);
  }

  /** Writes one diagnostic line (debug lines only to the sinks, which filter by the client's level). */
  log(level: LogLevel, message: string): void {
    if (level !== "debug") {
      const prefix = level === "info" ? "" : `${level}: `;
      console.error(`[code-runner-mcp] ${prefix}${message}`);
    }
    for (const sink of this.#sinks) sink(level, message);
  }
}
