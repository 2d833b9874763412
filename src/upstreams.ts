/**
 * Code mode's server side: the operator's other MCP servers ("upstreams"), connected to as an MCP client,
 * and the per-run view through which a run's calls reach them.
 *
 * Security: a run never holds a connection, a URL, a command or a credential. It sends requests over its
 * channel ({@link ./code_mode_protocol.ts}); the server checks them against the configuration and the run's
 * limits, makes the call itself, and answers only that run. Upstream secrets (the configured `env`,
 * `headers` and URL credentials) are redacted from every error message and log line made here.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/stdio"
import type { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/streamableHttp"
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import {
  type CallToolResult,
  CallToolResultSchema,
  ErrorCode,
  McpError,
  type Tool,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { isAbsolute, join, resolve } from "node:path";
import { DOWNLOAD_SETTINGS } from "./child_env.ts";
import {
  errorReply,
  type McpCallValue,
  type McpErrorCode,
  type McpResultMessage,
  type McpServerInfo,
  type McpToolInfo,
  parseSandboxMcpRequest,
  type SandboxMcpRequest,
} from "./code_mode_protocol.ts";
import type { Logger } from "./log.ts";
import { utilLinux } from "./sandbox.ts";
import {
  SERVER_NAME_PATTERN,
  TOOL_NAME_PATTERN,
  type UpstreamConfig,
  type UpstreamsConfig,
} from "./upstreams_config.ts";
import { VERSION } from "./version.ts";

export type { McpCallValue, McpErrorCode, McpServerInfo, McpToolInfo } from "./code_mode_protocol.ts";

/** A failed list or call; the message is safe to show to a run (no upstream secret is in it). */
export class UpstreamError extends Error {
  /** What kind of failure, for code that branches on it. */
  readonly code: McpErrorCode;

  constructor(code: McpErrorCode, message: string) {
    super(message);
    this.name = "UpstreamError";
    this.code = code;
  }
}

/** What a tool call gave back: the rendered value a run sees, with the raw result. */
export interface ToolCallOutput extends McpCallValue {
  raw: CallToolResult;
}

/** How long and how hard an upstream is waited for. */
export interface UpstreamsOptions {
  /** Where every call is logged (at `info`), and connections, exits and start failures. */
  logger: Logger;
  /** The server's environment: the download settings (CA files, proxies) and PATH stdio upstreams get. */
  serverEnv?: Readonly<Record<string, string | undefined>>;
  /** Time an upstream has to start and answer the MCP handshake, and to list its tools (default 30 s). */
  connectTimeoutMs?: number;
  /** After an upstream failed to start, calls fail at once for this long before it is tried again (1 s). */
  startRetryMs?: number;
}

/** How long one call may take and what cancels it. */
export interface CallOptions {
  signal?: AbortSignal;
  /** When the call must be done, in `Date.now()` milliseconds (default: 60 s from now). */
  deadline?: number;
}

/** The limits of one run's calls. */
export interface RunUpstreamsOptions {
  /** The run's signal: when it aborts, its calls in flight are cancelled and no new one starts. */
  signal: AbortSignal;
  /** Calls the run may make (failed ones count too). */
  maxCalls: number;
  /** Bytes of results (as JSON) the run may receive in total. */
  maxResultBytes: number;
  /** When the run must end, in `Date.now()` milliseconds; each call must finish before it. */
  deadline: number;
}

/** One run's view of the upstreams: its calls are counted, bounded and cancelled with it. */
export interface RunUpstreams {
  /** The upstreams and their allowed tools. */
  list(): Promise<McpServerInfo[]>;
  /** Calls an allowed tool; an `isError` result is a value, every other failure an {@linkcode UpstreamError}. */
  call(server: string, tool: string, args: unknown): Promise<ToolCallOutput>;
  /**
   * Answers one message of the run's channel (see {@link ./code_mode_protocol.ts}); never throws. Null
   * when the message is so malformed that it has no id to answer.
   */
  handle(message: unknown): Promise<McpResultMessage | null>;
  /** Calls made so far. */
  readonly calls: number;
  /** Result bytes received so far. */
  readonly resultBytes: number;
}

/** A summary of an upstream without its secrets, for `doctor` and the banner. */
export interface UpstreamSummary {
  name: string;
  transport: "stdio" | "http";
  /** The command (without its arguments) or the URL (without credentials or query). */
  target: string;
  /** The allow-list, or null for every tool. */
  tools: readonly string[] | null;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const DEFAULT_CALL_TIMEOUT_MS = 60_000;
const DEFAULT_START_RETRY_MS = 1000;
/** How long an upstream's process may take to exit once closed, before it is killed outright. */
const EXIT_GRACE_MS = 5000;
/** How long an HTTP upstream may take to end our session when we close. */
const SESSION_END_GRACE_MS = 2000;
/** Upstreams with more pages of tools than this are cut off there. */
const MAX_TOOL_PAGES = 100;
/** Longest error message passed on; upstream messages can be whole pages. */
const MAX_MESSAGE_CHARS = 2000;

/**
 * The configured upstreams. Each is connected on first use, reconnected on the next call after it dies,
 * and closed with {@linkcode Upstreams.close}; a stdio upstream's process never outlives the server.
 *
 * @example
 * ```ts
 * import { Logger } from "./log.ts";
 * import { parseUpstreamsConfig } from "./upstreams_config.ts";
 * async function example() {
 *   const config = parseUpstreamsConfig('{"mcpServers": {"notes": {"command": "notes-server"}}}');
 *   const upstreams = new Upstreams(config, { logger: new Logger() });
 *   const controller = new AbortController();
 *   try {
 *     const run = upstreams.forRun({
 *       signal: controller.signal,
 *       maxCalls: 100,
 *       maxResultBytes: 1_000_000,
 *       deadline: Date.now() + 30_000,
 *     });
 *     const found = await run.call("notes", "search", { query: "deno" });
 *     console.log(found.structured ?? found.text);
 *   } finally {
 *     await upstreams.close();
 *   }
 * }
 * ```
 */
export class Upstreams {
  readonly #upstreams = new Map<string, Upstream>();
  readonly #logger: Logger;
  readonly #redactor: Redactor;
  #closed = false;

  constructor(config: UpstreamsConfig, options: UpstreamsOptions) {
    this.#logger = options.logger;
    const redactor = new Redactor(config);
    this.#redactor = redactor;
    for (const [name, server] of config.servers) {
      this.#upstreams.set(name, new Upstream(name, server, { ...options, redactor }));
    }
  }

  /** The configured upstreams, without secrets. */
  summaries(): UpstreamSummary[] {
    return [...this.#upstreams.values()].map((upstream) => upstream.summary());
  }

  /** Every upstream with its allowed tools; one that cannot be reached is listed with an error. */
  async list(options: CallOptions = {}): Promise<McpServerInfo[]> {
    if (this.#closed) throw new UpstreamError("closed", "the server is shutting down");
    return await Promise.all(
      [...this.#upstreams.values()].map(async (upstream): Promise<McpServerInfo> => {
        try {
          return { name: upstream.name, tools: await upstream.tools(options) };
        } catch (error) {
          return { name: upstream.name, tools: [], error: messageOf(error) };
        }
      }),
    );
  }

  /**
   * Calls `tool` of upstream `server`; logs the call (names, status, duration and sizes, never values).
   * Throws an {@linkcode UpstreamError} for everything but a result, including one with `isError`.
   */
  async call(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<ToolCallOutput> {
    return (await this.#call(server, tool, args, options)).output;
  }

  /**
   * A view for one run, enforcing its limits.
   *
   * @example
   * ```ts
   * async function example(upstreams: Upstreams, signal: AbortSignal) {
   *   const run = upstreams.forRun({ signal, maxCalls: 50, maxResultBytes: 4 << 20, deadline: Date.now() + 30_000 });
   *   // A message from the run's channel, answered on the same channel.
   *   const answer = await run.handle({ type: "mcp_list", id: 1 });
   *   return answer;
   * }
   * ```
   */
  forRun(options: RunUpstreamsOptions): RunUpstreams {
    return new RunView(
      this,
      options,
      (server, tool, args, callOptions) => this.#call(server, tool, args, callOptions),
    );
  }

  /** Closes every connection and waits for every stdio upstream to exit; safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#upstreams.values()].map((upstream) => upstream.close()));
  }

  async #call(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    options: CallOptions,
  ): Promise<{ output: ToolCallOutput; bytes: number }> {
    const started = performance.now();
    const argBytes = jsonBytes(args);
    let status = "ok";
    let detail = "";
    let bytes = 0;
    try {
      if (this.#closed) throw new UpstreamError("closed", "the server is shutting down");
      const upstream = this.#upstreams.get(server);
      if (!upstream || !SERVER_NAME_PATTERN.test(server)) {
        const names = [...this.#upstreams.keys()];
        throw new UpstreamError(
          "unknown_server",
          `no MCP server named ${quote(server)} is configured; ` +
            (names.length ? `the servers are ${names.join(", ")}` : "none are"),
        );
      }
      const result = await upstream.call(tool, args, options);
      bytes = result.bytes;
      if (result.output.isError) status = "tool error";
      return result;
    } catch (error) {
      // Security: whatever failed, what leaves here is an UpstreamError without secrets.
      const failure = error instanceof UpstreamError ? error : new UpstreamError(
        "upstream_error",
        this.#redactor.apply(messageOf(error)).slice(0, MAX_MESSAGE_CHARS),
      );
      status = failure.code;
      detail = `: ${oneLine(failure.message, 300)}`;
      throw failure;
    } finally {
      // Security: names are logged, argument values are not (they may hold anything the run read).
      const name = `${safeName(server)}.${safeName(tool)}`;
      this.#logger.log(
        "info",
        `mcp call ${name}: ${status} in ${Math.round(performance.now() - started)} ms, ` +
          `arguments ${argBytes} B, result ${bytes} B${detail}`,
      );
    }
  }
}

type CallFunction = (
  server: string,
  tool: string,
  args: Record<string, unknown>,
  options: CallOptions,
) => Promise<{ output: ToolCallOutput; bytes: number }>;

/** One run's calls: counted, bounded, and cancelled with the run. */
class RunView implements RunUpstreams {
  readonly #upstreams: Upstreams;
  readonly #options: RunUpstreamsOptions;
  readonly #call: CallFunction;
  #calls = 0;
  #resultBytes = 0;

  constructor(upstreams: Upstreams, options: RunUpstreamsOptions, call: CallFunction) {
    this.#upstreams = upstreams;
    this.#options = options;
    this.#call = call;
  }

  get calls(): number {
    return this.#calls;
  }

  get resultBytes(): number {
    return this.#resultBytes;
  }

  async list(): Promise<McpServerInfo[]> {
    this.#throwIfEnded();
    const { signal, deadline } = this.#options;
    return await this.#upstreams.list({ signal, deadline });
  }

  async call(server: string, tool: string, args: unknown): Promise<ToolCallOutput> {
    this.#throwIfEnded();
    if (typeof args !== "object" || args === null || Array.isArray(args)) {
      throw new UpstreamError("bad_request", "a tool's arguments must be an object");
    }
    const { maxCalls, maxResultBytes, signal, deadline } = this.#options;
    // Security: a run flooding calls stops at its limit; the upstream never sees the excess.
    if (this.#calls >= maxCalls) {
      throw new UpstreamError("limit_exceeded", `this run has made its limit of ${maxCalls} MCP tool calls`);
    }
    this.#calls++;
    const { output, bytes } = await this.#call(server, tool, args as Record<string, unknown>, {
      signal,
      deadline,
    });
    if (this.#resultBytes + bytes > maxResultBytes) {
      this.#resultBytes = maxResultBytes;
      throw new UpstreamError(
        "limit_exceeded",
        `the result of ${server}.${tool} (${bytes} bytes) would take this run past its limit of ` +
          `${maxResultBytes} bytes of MCP tool results`,
      );
    }
    this.#resultBytes += bytes;
    return output;
  }

  async handle(message: unknown): Promise<McpResultMessage | null> {
    const request = parseSandboxMcpRequest(message);
    if (!("type" in request)) {
      return request.id === null ? null : errorReply(request.id, "bad_request", request.message);
    }
    return await this.#answer(request);
  }

  async #answer(request: SandboxMcpRequest): Promise<McpResultMessage> {
    try {
      const value = request.type === "mcp_list"
        ? await this.list()
        : await this.call(request.server, request.tool, request.args);
      return { type: "mcp_result", id: request.id, ok: true, value };
    } catch (error) {
      const code = error instanceof UpstreamError ? error.code : "upstream_error";
      return errorReply(request.id, code, messageOf(error));
    }
  }

  #throwIfEnded(): void {
    if (this.#options.signal.aborted) {
      throw new UpstreamError("cancelled", "the run was cancelled");
    }
  }
}

/** A live connection to an upstream. */
interface Connection {
  readonly client: Client;
  readonly transport: StdioClientTransport | StreamableHTTPClientTransport;
  /** The stdio upstream's process, or null over HTTP (and before it started). */
  pid: number | null;
  /** Resolves once the transport has closed (for stdio: the process has exited). */
  readonly closed: Promise<void>;
  /** The upstream's tools, listed once and again after it says they changed. */
  tools: Promise<Map<string, Tool>> | null;
}

interface UpstreamOptions extends UpstreamsOptions {
  redactor: Redactor;
}

/** One configured upstream and its connection, if any. */
class Upstream {
  readonly name: string;
  readonly #config: UpstreamConfig;
  readonly #options: UpstreamOptions;
  readonly #redactor: Redactor;
  /** The connection in use, or being made; null when there is none. */
  #connection: Promise<Connection> | null = null;
  /** The connection {@linkcode #connection} resolved to, once it has. */
  #live: Connection | null = null;
  /** Connections being closed, so that {@linkcode close} can wait for them. */
  readonly #closing = new Set<Promise<void>>();
  #startFailure: { error: UpstreamError; until: number } | null = null;
  #closed = false;

  constructor(name: string, config: UpstreamConfig, options: UpstreamOptions) {
    this.name = name;
    this.#config = config;
    this.#options = options;
    this.#redactor = options.redactor;
  }

  summary(): UpstreamSummary {
    const config = this.#config;
    if (config.transport === "stdio") {
      return { name: this.name, transport: "stdio", target: config.command, tools: config.tools };
    }
    const url = new URL(config.url);
    return {
      name: this.name,
      transport: "http",
      target: `${url.origin}${url.pathname}`,
      tools: config.tools,
    };
  }

  /** The allowed tools, as a run sees them. */
  async tools(options: CallOptions): Promise<McpToolInfo[]> {
    return await this.#withDeadline(options, async (signal) => {
      const connection = await abortable(this.#connect(), signal);
      const tools = await abortable(this.#toolsOf(connection), signal);
      return [...tools.values()].filter((tool) => this.#allows(tool.name)).map(toolInfo);
    });
  }

  async call(
    tool: string,
    args: Record<string, unknown>,
    options: CallOptions,
  ): Promise<{ output: ToolCallOutput; bytes: number }> {
    if (!TOOL_NAME_PATTERN.test(tool)) {
      throw new UpstreamError("tool_not_found", `${quote(tool)} is not a valid tool name`);
    }
    // Security: the allow-list is checked before the upstream is even started.
    if (!this.#allows(tool)) {
      throw new UpstreamError(
        "tool_not_allowed",
        `the tool ${quote(tool)} of MCP server ${
          quote(this.name)
        } is not allowed by the server's configuration`,
      );
    }
    return await this.#withDeadline(options, async (signal, remainingMs) => {
      // An HTTP upstream that forgot our session (it restarted, or the session idled out) did not run the
      // call, so it is made once more on a new session.
      for (let attempt = 1;; attempt++) {
        const connection = await abortable(this.#connect(), signal);
        try {
          const tools = await abortable(this.#toolsOf(connection), signal);
          if (!tools.has(tool)) {
            throw new UpstreamError(
              "tool_not_found",
              `MCP server ${quote(this.name)} has no tool ${quote(tool)}; list the tools to see which it has`,
            );
          }
          const raw = await connection.client.request(
            { method: "tools/call", params: { name: tool, arguments: args } },
            CallToolResultSchema,
            // The SDK's own timeout is only a backstop behind the deadline's signal.
            { signal, timeout: Math.min(remainingMs() + 1000, 2 ** 31 - 1) },
          );
          const bytes = jsonBytes(raw);
          return { output: render(raw), bytes };
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          if (error instanceof UpstreamError) throw error;
          if (error instanceof StreamableHTTPError && error.code === 404 && attempt === 1) {
            this.#drop(connection);
            continue;
          }
          throw this.#callError(error, tool, connection);
        }
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = null;
    this.#live = null;
    if (connection) this.#closeConnection(connection.catch(() => null));
    await Promise.all([...this.#closing]);
  }

  #allows(tool: string): boolean {
    return this.#config.tools === null || this.#config.tools.includes(tool);
  }

  /** Runs `work` with a signal that aborts at the deadline or with the caller's signal, whichever first. */
  async #withDeadline<T>(
    options: CallOptions,
    work: (signal: AbortSignal, remainingMs: () => number) => Promise<T>,
  ): Promise<T> {
    const deadline = options.deadline ?? Date.now() + DEFAULT_CALL_TIMEOUT_MS;
    const remainingMs = () => Math.max(0, deadline - Date.now());
    const controller = new AbortController();
    const onAbort = () =>
      controller.abort(
        new UpstreamError(
          "cancelled",
          `the call to MCP server ${quote(this.name)} was cancelled with the run`,
        ),
      );
    const onTimeout = () =>
      controller.abort(
        new UpstreamError(
          "timeout",
          `the call to MCP server ${quote(this.name)} did not finish before the deadline`,
        ),
      );
    if (options.signal?.aborted) onAbort();
    else if (remainingMs() === 0) onTimeout();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = controller.signal.aborted ? undefined : setTimeout(onTimeout, remainingMs());
    try {
      if (controller.signal.aborted) throw controller.signal.reason;
      return await work(controller.signal, remainingMs);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** The connection, made now if there is none; shared by every caller, whoever gives up waiting. */
  #connect(): Promise<Connection> {
    if (this.#closed) return Promise.reject(new UpstreamError("closed", "the server is shutting down"));
    if (this.#connection) return this.#connection;
    const failure = this.#startFailure;
    if (failure && Date.now() < failure.until) return Promise.reject(failure.error);
    const connecting = this.#open().then(
      (connection) => {
        this.#startFailure = null;
        if (this.#connection === connecting) this.#live = connection;
        return connection;
      },
      (error: unknown) => {
        if (this.#connection === connecting) this.#connection = null;
        const startError = error instanceof UpstreamError ? error : new UpstreamError(
          "start_failed",
          `MCP server ${quote(this.name)} failed to start: ${this.#redacted(error)}`,
        );
        this.#startFailure = {
          error: startError,
          until: Date.now() + (this.#options.startRetryMs ?? DEFAULT_START_RETRY_MS),
        };
        this.#options.logger.log("warning", `upstream ${this.name}: ${oneLine(startError.message, 500)}`);
        throw startError;
      },
    );
    this.#connection = connecting;
    return connecting;
  }

  async #open(): Promise<Connection> {
    const config = this.#config;
    const timeout = this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const client = new Client({ name: "code-runner-mcp", version: VERSION }, { capabilities: {} });
    let transport: StdioClientTransport | StreamableHTTPClientTransport;
    let stdio: StdioClientTransport | null = null;
    if (config.transport === "stdio") {
      const env = this.#stdioEnv();
      const command = resolveCommand(config.command, env.PATH ?? "", config.cwd);
      if (command === null) {
        throw new UpstreamError(
          "start_failed",
          `MCP server ${quote(this.name)} failed to start: its command ${
            quote(config.command)
          } was not found` +
            (config.command.includes("/") ? "" : " in PATH"),
        );
      }
      const { setpriv } = utilLinux();
      // Hygiene: the kernel kills the upstream when the server dies, even by SIGKILL (PR_SET_PDEATHSIG);
      // setpriv execs the command in the same process, so the pid is the upstream's.
      const argv = setpriv ? [setpriv, "--pdeathsig", "KILL", "--", command] : [command];
      const [program, ...prefix] = argv as [string, ...string[]];
      // Loaded on first use: the module reads the environment as it loads, and HTTP upstreams never need it.
      const { StdioClientTransport: Stdio } = await import("@modelcontextprotocol/sdk/client/stdio.js") as {
        StdioClientTransport: typeof StdioClientTransport;
      };
      transport = stdio = new Stdio({
        command: program,
        args: [...prefix, ...config.args],
        env,
        ...(config.cwd ? { cwd: config.cwd } : {}),
        // Its diagnostics go to the server's stderr, for the operator; never to a run.
        stderr: "inherit",
      });
    } else {
      transport = new StreamableHTTPClientTransport(new URL(config.url), {
        requestInit: { headers: { ...config.headers } },
      });
    }
    let markClosed = () => {};
    const closed = new Promise<void>((resolve) => markClosed = resolve);
    // Set before connecting: the SDK keeps a transport's own onclose and calls it first.
    transport.onclose = () => markClosed();
    const connection: Connection = { client, transport, pid: null, closed, tools: null };
    client.onclose = () => this.#lost(connection);
    client.onerror = (error) =>
      this.#options.logger.log("debug", `upstream ${this.name}: ${oneLine(this.#redacted(error), 500)}`);
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      connection.tools = null;
    });
    try {
      await client.connect(transport, { timeout });
    } catch (error) {
      connection.pid = stdio?.pid ?? null;
      // The SDK closes a client whose handshake failed, but not one whose transport never started.
      this.#closeConnection(Promise.resolve(connection));
      if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
        throw new UpstreamError(
          "start_failed",
          `MCP server ${quote(this.name)} did not complete the MCP handshake within ${timeout} ms`,
        );
      }
      if (error instanceof McpError && error.code === ErrorCode.ConnectionClosed) {
        throw new UpstreamError(
          "start_failed",
          `MCP server ${quote(this.name)} failed to start: it ${
            config.transport === "stdio" ? "exited" : "closed the connection"
          } during the MCP handshake (the server's stderr may say why)`,
        );
      }
      throw error;
    }
    connection.pid = stdio?.pid ?? null;
    this.#options.logger.log(
      "info",
      `upstream ${this.name}: connected${connection.pid === null ? "" : ` (pid ${connection.pid})`}`,
    );
    return connection;
  }

  /** Minimal environment, then the download settings, then the configured variables. */
  #stdioEnv(): Record<string, string> {
    const serverEnv = this.#options.serverEnv ?? Deno.env.toObject();
    const env: Record<string, string> = {};
    // The SDK adds HOME, LOGNAME, PATH, SHELL, TERM and USER from the server's environment below these.
    for (const name of ["PATH", ...DOWNLOAD_SETTINGS]) {
      const value = serverEnv[name];
      if (value !== undefined) env[name] = value;
    }
    return this.#config.transport === "stdio" ? { ...env, ...this.#config.env } : env;
  }

  #toolsOf(connection: Connection): Promise<Map<string, Tool>> {
    if (connection.tools) return connection.tools;
    const timeout = this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const listing = (async () => {
      const tools = new Map<string, Tool>();
      let cursor: string | undefined;
      for (let page = 0; page < MAX_TOOL_PAGES; page++) {
        const result = await connection.client.listTools(cursor === undefined ? undefined : { cursor }, {
          timeout,
        });
        for (const tool of result.tools) tools.set(tool.name, tool);
        cursor = result.nextCursor;
        if (cursor === undefined) break;
      }
      const missing = (this.#config.tools ?? []).filter((name) => !tools.has(name));
      if (missing.length) {
        this.#options.logger.log(
          "warning",
          `upstream ${this.name}: its allow-list names tools it does not have: ${
            missing.map(safeName).join(", ")
          }`,
        );
      }
      return tools;
    })().catch((error: unknown) => {
      if (connection.tools === listing) connection.tools = null;
      throw this.#callError(error, null, connection);
    });
    connection.tools = listing;
    return listing;
  }

  /** Turns what a failed request threw into an error for the run, dropping a connection that broke. */
  #callError(error: unknown, tool: string | null, connection: Connection): UpstreamError {
    const what = tool === null
      ? `listing the tools of MCP server ${quote(this.name)}`
      : `${this.name}.${tool}`;
    if (this.#closed) return new UpstreamError("closed", "the server is shutting down");
    if (error instanceof McpError && error.code === ErrorCode.ConnectionClosed) {
      return new UpstreamError(
        "crashed",
        `MCP server ${quote(this.name)} ${
          this.#config.transport === "stdio" ? "exited" : "closed the connection"
        } during ${what}; the next call starts it again`,
      );
    }
    if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
      return new UpstreamError("timeout", `${what} did not finish in time`);
    }
    if (error instanceof McpError) {
      return new UpstreamError("upstream_error", `${what} failed: ${this.#redacted(error)}`);
    }
    // The SDK validates results with zod; its errors carry the issues.
    if (error instanceof Error && Array.isArray((error as { issues?: unknown }).issues)) {
      return new UpstreamError(
        "invalid_result",
        `MCP server ${quote(this.name)} answered ${what} with something that is not a valid MCP result`,
      );
    }
    // Anything else is the transport failing (a refused connection, an HTTP error): start afresh next time.
    this.#drop(connection);
    return new UpstreamError(
      "crashed",
      `MCP server ${quote(this.name)} could not be reached for ${what}: ${this.#redacted(error)}; ` +
        "the next call connects again",
    );
  }

  /** The connection ended on its own (the process exited, the stream closed). */
  #lost(connection: Connection): void {
    if (this.#forget(connection) && !this.#closed) {
      this.#options.logger.log(
        "warning",
        `upstream ${this.name}: ${
          connection.pid === null ? "connection closed" : `process ${connection.pid} exited`
        }; the next call starts it again`,
      );
    }
  }

  /** Closes a connection that failed us, so the next call makes a new one. */
  #drop(connection: Connection): void {
    this.#forget(connection);
    this.#closeConnection(Promise.resolve(connection));
  }

  /** Stops using `connection` if it is the current one; says whether it was. */
  #forget(connection: Connection): boolean {
    if (this.#live !== connection) return false;
    this.#live = null;
    this.#connection = null;
    return true;
  }

  #closeConnection(pending: Promise<Connection | null>): void {
    const closing = (async () => {
      const connection = await pending;
      if (!connection) return;
      const { transport } = connection;
      if (transport instanceof StreamableHTTPClientTransport) {
        // Politeness: the upstream may cap its sessions; closing the client below aborts a slow answer.
        await withTimeout(transport.terminateSession().catch(() => {}), SESSION_END_GRACE_MS);
      }
      // The SDK's stdio transport closes stdin, then sends SIGTERM, then SIGKILL, a few seconds apart.
      await connection.client.close().catch(() => {});
      const waited = await withTimeout(connection.closed.then(() => true), EXIT_GRACE_MS);
      if (!waited && connection.pid !== null) {
        try {
          Deno.kill(connection.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    })();
    this.#closing.add(closing);
    closing.finally(() => this.#closing.delete(closing));
  }

  #redacted(error: unknown): string {
    const message = error instanceof StreamableHTTPError && error.code !== undefined
      ? `HTTP ${error.code}: ${messageOf(error).replace(/^Streamable HTTP error: /, "")}`
      : messageOf(error);
    return this.#redactor.apply(message).slice(0, MAX_MESSAGE_CHARS);
  }
}

/**
 * Removes upstream secrets from text: every configured env and header value, the parts of a header value
 * such as the token after `Bearer`, and credentials and query values of URLs, also JSON- and URL-encoded.
 */
class Redactor {
  readonly #secrets: string[];

  constructor(config: UpstreamsConfig) {
    const secrets = new Set<string>();
    const add = (value: string, minimum: number) => {
      if (value.length < minimum) return;
      for (const form of [value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)]) {
        secrets.add(form);
      }
    };
    for (const server of config.servers.values()) {
      const values = server.transport === "stdio" ? Object.values(server.env) : Object.values(server.headers);
      for (const value of values) {
        add(value, 4);
        for (const part of value.split(/[\s,;=:]+/)) add(part, 8);
      }
      if (server.transport === "http") {
        const url = new URL(server.url);
        add(decodeURIComponent(url.username), 4);
        add(decodeURIComponent(url.password), 4);
        for (const value of url.searchParams.values()) add(value, 4);
      }
    }
    // Longest first, so a secret that contains another is removed whole.
    this.#secrets = [...secrets].sort((a, b) => b.length - a.length);
  }

  apply(text: string): string {
    let result = text;
    for (const secret of this.#secrets) result = result.replaceAll(secret, "[redacted]");
    return result;
  }
}

/** A bare command name looked up in `path`; a path resolved against `cwd`; null when it is not a file. */
function resolveCommand(command: string, path: string, cwd: string | null): string | null {
  const candidates = command.includes("/")
    ? [isAbsolute(command) ? command : resolve(cwd ?? Deno.cwd(), command)]
    : path.split(":").filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch {
      // Not there.
    }
  }
  return null;
}

function render(raw: CallToolResult): ToolCallOutput {
  const text = raw.content.flatMap((item) => item.type === "text" ? [item.text] : []).join("\n");
  return {
    ...(raw.structuredContent !== undefined ? { structured: raw.structuredContent } : {}),
    text,
    isError: raw.isError === true,
    raw,
  };
}

function toolInfo(tool: Tool): McpToolInfo {
  return {
    name: tool.name,
    ...(tool.title !== undefined ? { title: tool.title } : {}),
    ...(tool.description !== undefined ? { description: tool.description } : {}),
    inputSchema: tool.inputSchema,
    ...(tool.outputSchema !== undefined ? { outputSchema: tool.outputSchema } : {}),
  };
}

/** `promise`'s value, or undefined once `ms` have passed. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Races `promise` against `signal`, without cancelling the shared work behind it. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function jsonBytes(value: unknown): number {
  try {
    return new TextEncoder().encode(JSON.stringify(value) ?? "").length;
  } catch {
    return 0;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function oneLine(text: string, max: number): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** A name as given, or quoted with escapes when it is not a plain name (it may come from a run). */
function safeName(name: string): string {
  return TOOL_NAME_PATTERN.test(name) && name.length <= 128 ? name : JSON.stringify(name.slice(0, 128));
}

function quote(name: string): string {
  return JSON.stringify(name.slice(0, 128));
}
