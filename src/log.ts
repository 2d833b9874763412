/**
 * Diagnostics of the server: to stderr (in a stdio server stdout is the protocol stream, so this is the
 * only place that prints) and, as MCP `notifications/message`, to every connected client at the level it
 * asked for with `logging/setLevel`.
 *
 * @module
 */

/** Severity of a diagnostic, as MCP names them. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Where diagnostics go besides stderr, e.g. an MCP session. */
export type LogSink = (level: LogLevel, message: string) => void;

/**
 * Writes diagnostics to stderr and to the sinks added to it.
 *
 * @example
 * ```ts
 * const logger = new Logger();
 * const remove = logger.addSink((level, data) => server.sendLoggingMessage({ level, data }));
 * logger.log("warning", "the Python snapshot did not boot");
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
