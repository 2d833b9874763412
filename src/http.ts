/**
 * Serves the tools over MCP Streamable HTTP: one MCP session per client session, each with its own Python
 * interpreter, bearer-token authentication, Host/Origin checks against DNS rebinding, idle expiry, a cap on
 * sessions and on request bodies, the operating endpoints `/healthz`, `/readyz` and `/metrics`, and a
 * graceful drain for rolling restarts.
 *
 * @module
 */
import { join } from "node:path";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/webStandardStreamableHttp"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import { isInitializeRequest, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { App } from "./app.ts";
import { LAUNCHER_URL } from "./javascript/launcher.ts";
import { childProcessStats, directorySize, Metrics, METRICS_CONTENT_TYPE } from "./metrics.ts";
import { PYODIDE_VERSION } from "./python/distribution.ts";
import { HOST_URL } from "./python/host.ts";
import { VERSION } from "./version.ts";

/** How the HTTP server listens and whom it lets in. */
export interface HttpOptions {
  host: string;
  port: number;
  /** Required as `Authorization: Bearer <token>` when set. */
  token: string | null;
  /** A session unused this long is closed. */
  sessionIdleMs: number;
  maxSessions: number;
  /** Names accepted in `Host` and `Origin` (`host` or `host:port`), or null for the default of {@linkcode hostAllowed}. */
  allowedHosts?: readonly string[] | null;
  /** Serve `GET /metrics` without the token. */
  metricsPublic?: boolean;
  /** Largest request body, in bytes (default {@linkcode DEFAULT_MAX_BODY_BYTES}). */
  maxBodyBytes?: number;
}

/** A running HTTP server. */
export interface HttpServer {
  /** The MCP endpoint, e.g. `http://127.0.0.1:8787/mcp`. */
  url: string;
  metrics: Metrics;
  /**
   * Stops taking sessions (`/readyz` answers 503, `initialize` is refused), lets requests in flight finish
   * for up to `graceMs`, then shuts down.
   */
  drain(graceMs: number): Promise<void>;
  /** Closes every session and the listener; safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * Largest request body: a `code` argument may be 1 MiB, and JSON escaping can grow it; anything larger is
 * refused with 413 before it is read.
 */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** Whether `host` is a loopback address, where running without a token is allowed. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** What {@linkcode hostAllowed} checks a `Host` or `Origin` host against. */
export interface HostPolicy {
  /** The port the server listens on; loopback names are accepted with this port. */
  port: number;
  /** The operator's list (`CODE_RUNNER_HTTP_ALLOWED_HOSTS`), or null for the default. */
  allowed: readonly string[] | null;
  /** Whether requests must carry a bearer token. */
  token: boolean;
}

/**
 * Whether a `Host` header value (or an Origin's `host`) may reach the server. Loopback names with the
 * server's own port always may. Beyond that: the names listed in `allowed` (an entry without a port matches
 * any port; a value without a port matches entries for 80 or 443), or, with no list, any name when a token
 * is required — and none without a token.
 *
 * @example
 * ```ts
 * hostAllowed("build-box:8787", { port: 8787, allowed: null, token: true }); // true
 * hostAllowed("evil.example:8787", { port: 8787, allowed: null, token: false }); // false
 * hostAllowed("mcp.example.com", { port: 8787, allowed: ["mcp.example.com"], token: true }); // true
 * ```
 */
export function hostAllowed(value: string | null, policy: HostPolicy): boolean {
  const parsed = value ? parseHost(value) : null;
  if (!parsed) return false;
  if (isLoopback(parsed.name) && (parsed.port ?? 80) === policy.port) return true;
  if (policy.allowed === null) {
    // Security: without a token, a web page that rebinds its own name to 127.0.0.1 would otherwise reach a
    // loopback server from the user's browser; with a token, the page cannot authenticate, so any name
    // (a proxy's, a load balancer's, the machine's) may be used.
    return policy.token;
  }
  return policy.allowed.some((entry) => {
    const wanted = parseHost(entry);
    if (!wanted || wanted.name !== parsed.name) return false;
    if (wanted.port === null) return true;
    return parsed.port === null ? wanted.port === 80 || wanted.port === 443 : wanted.port === parsed.port;
  });
}

/**
 * Whether a browser's `Origin` may reach the server: a page of the server's own name (Origin equals the
 * accepted Host), a loopback page on the server's port, or a listed name; with no list, a token does not
 * open it to every page.
 */
export function originAllowed(origin: string, host: string | null, policy: HostPolicy): boolean {
  if (!URL.canParse(origin)) return false;
  const { host: originHost } = new URL(origin);
  if (host !== null && originHost.toLowerCase() === host.trim().toLowerCase()) {
    return hostAllowed(host, policy);
  }
  return hostAllowed(originHost, { ...policy, token: false });
}

function parseHost(value: string): { name: string; port: number | null } | null {
  const match = value.trim().toLowerCase().match(/^(\[[0-9a-f:.]+\]|[^:[\]]+?)\.?(?::(\d{1,5}))?$/);
  if (!match) return null;
  return { name: match[1] as string, port: match[2] === undefined ? null : Number(match[2]) };
}

interface Session {
  transport: WebStandardStreamableHTTPServerTransport;
  close: () => Promise<void>;
  lastUsed: number;
  /** JSON-RPC requests of this session still waiting for their response. */
  pending: Map<string | number, { tool: string | null; started: number }>;
}

const jsonError = (status: number, message: string, code = -32000, headers: HeadersInit = {}) =>
  Response.json({ jsonrpc: "2.0", id: null, error: { code, message } }, { status, headers });

/**
 * Starts serving; resolves once listening.
 *
 * @example
 * ```ts
 * import type { App } from "./app.ts";
 * async function example(app: App) {
 *   const served = await serveHttp(app, {
 *     host: "127.0.0.1",
 *     port: 8787,
 *     token: null,
 *     sessionIdleMs: 1_800_000,
 *     maxSessions: 16,
 *   });
 *   Deno.addSignalListener("SIGTERM", () => served.drain(30_000));
 * }
 * ```
 */
export function serveHttp(app: App, options: HttpOptions): Promise<HttpServer> {
  if (!isLoopback(options.host) && !options.token) {
    throw new Error(
      `refusing to serve on ${options.host} without a token: set CODE_RUNNER_HTTP_TOKEN or ` +
        "CODE_RUNNER_HTTP_TOKEN_FILE, or listen on 127.0.0.1",
    );
  }
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const sessions = new Map<string, Session>();
  /** Why recently ended sessions ended, for the answer their client gets next (bounded: oldest forgotten). */
  const ended = new Map<string, "expired" | "evicted">();
  const remember = (id: string, why: "expired" | "evicted") => {
    ended.set(id, why);
    if (ended.size > 10_000) ended.delete(ended.keys().next().value as string);
  };
  const metrics = new Metrics();
  let opening = 0;
  let draining = false;
  const policy: HostPolicy = {
    port: options.port,
    allowed: options.allowedHosts ?? null,
    token: !!options.token,
  };
  const expectedToken = options.token ? new TextEncoder().encode(`Bearer ${options.token}`) : null;
  const authorized = (request: Request) => {
    if (!expectedToken) return true;
    const given = new TextEncoder().encode(request.headers.get("authorization") ?? "");
    if (given.length !== expectedToken.length) return false;
    // Compared in constant time, so the token cannot be guessed byte by byte.
    let diff = 0;
    for (let i = 0; i < given.length; i++) diff |= (given[i] as number) ^ (expectedToken[i] as number);
    return diff === 0;
  };
  const refuse = (status: number, message: string, code = -32000, headers: HeadersInit = {}) => {
    metrics.recordRejected(status);
    return jsonError(status, message, code, headers);
  };

  const inFlight = () => [...sessions.values()].reduce((sum, session) => sum + session.pending.size, 0);
  const idleWaiters = new Set<() => void>();
  const settled = () => {
    if (inFlight() === 0) { for (const wake of idleWaiters) wake(); }
  };
  const closeSession = (id: string, session: Session, event: "expired" | "evicted" | "closed") => {
    sessions.delete(id);
    session.pending.clear();
    metrics.recordSession(event);
    settled();
    return session.close().catch(() => {});
  };

  const packageCache = app.runtime.interpreters.broker.cacheDir;
  const snapshotPresent = async () => {
    for await (const entry of Deno.readDir(join(packageCache, "snapshots"))) {
      if (entry.isFile && entry.name.endsWith(".bin")) return true;
    }
    return false;
  };
  const readiness = async () => {
    const reasons: string[] = [];
    if (draining) reasons.push("draining");
    if (sessions.size + opening >= options.maxSessions) reasons.push("session cap reached");
    if (!await snapshotPresent().catch(() => false)) reasons.push("Python snapshot not built yet");
    return reasons;
  };
  registerGauges(metrics, {
    app,
    sessionsOpen: () => sessions.size,
    maxSessions: options.maxSessions,
    inFlight,
    draining: () => draining,
    readiness,
    snapshotPresent,
    packageCache,
  });

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, session] of sessions) {
      if (now - session.lastUsed > options.sessionIdleMs) {
        remember(id, "expired");
        closeSession(id, session, "expired");
      }
    }
  }, Math.min(options.sessionIdleMs, 10_000));

  const handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    // Probes carry no token and whatever Host the platform uses; the answers reveal nothing but the state.
    if (url.pathname === "/healthz" || url.pathname === "/readyz") {
      if (request.method !== "GET" && request.method !== "HEAD") return refuse(405, "Method not allowed");
      if (url.pathname === "/healthz") return Response.json({ status: "ok" });
      const reasons = await readiness();
      return Response.json({ ready: reasons.length === 0, reasons }, { status: reasons.length ? 503 : 200 });
    }
    if (url.pathname !== "/mcp" && url.pathname !== "/metrics") {
      metrics.recordRejected(404);
      return new Response("Not found: the MCP endpoint is /mcp\n", { status: 404 });
    }
    if (!hostAllowed(request.headers.get("host"), policy)) {
      return refuse(
        403,
        "Forbidden: unexpected Host header (list the name in CODE_RUNNER_HTTP_ALLOWED_HOSTS to accept it)",
      );
    }
    const origin = request.headers.get("origin");
    if (origin !== null && !originAllowed(origin, request.headers.get("host"), policy)) {
      return refuse(403, "Forbidden: requests from web pages of other origins are refused");
    }
    const open = url.pathname === "/metrics" && options.metricsPublic;
    if (!open && !authorized(request)) {
      return refuse(401, "Unauthorized: send Authorization: Bearer <token>", -32001, {
        "www-authenticate": 'Bearer realm="code-runner-mcp"',
      });
    }
    if (url.pathname === "/metrics") {
      if (request.method !== "GET" && request.method !== "HEAD") return refuse(405, "Method not allowed");
      return new Response(await metrics.render(), { headers: { "content-type": METRICS_CONTENT_TYPE } });
    }
    // Security: a body is never read whole before its size is known to be under the cap (issue: a 1 GiB
    // POST held 1.1 GiB of the server's memory).
    if (Number(request.headers.get("content-length")) > maxBodyBytes) return tooLarge(maxBodyBytes, refuse);
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId) {
      const session = sessions.get(sessionId);
      if (!session) {
        return refuse(
          404,
          ended.get(sessionId) === "expired"
            ? `Session expired after ${options.sessionIdleMs} ms without use; start a new session (initialize). Its Python state is gone.`
            : ended.get(sessionId) === "evicted"
            ? `Session closed to make room for a new one (at most ${options.maxSessions} at once; it was the ` +
              "least recently used with nothing running); start a new session (initialize). Its Python state is gone."
            : "Session not found: it was closed, or it lived on a server process that has stopped; start a new " +
              "session (initialize). Its Python state is gone.",
          -32001,
        );
      }
      session.lastUsed = Date.now();
      return await session.transport.handleRequest(request);
    }
    return await initialize(request);
  };

  /** A request without a session: everything that can refuse it is checked before an interpreter starts. */
  const initialize = async (request: Request): Promise<Response> => {
    if (request.method !== "POST") return refuse(400, "Bad request: no mcp-session-id header");
    const accept = request.headers.get("accept") ?? "";
    if (!accept.includes("application/json") || !accept.includes("text/event-stream")) {
      return refuse(406, "Not Acceptable: Client must accept both application/json and text/event-stream");
    }
    const mediaType = (request.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    if (mediaType !== "application/json") {
      return refuse(415, "Unsupported Media Type: Content-Type must be application/json");
    }
    const text = await readCapped(request, maxBodyBytes);
    if (text === null) return tooLarge(maxBodyBytes, refuse);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return refuse(400, "Parse error: Invalid JSON", -32700);
    }
    const messages: unknown[] = Array.isArray(body) ? body : [body];
    if (!messages.some((message) => isInitializeRequest(message))) {
      return refuse(400, "Bad request: the first request of a session must be initialize", -32600);
    }
    if (messages.length > 1) {
      return refuse(400, "Invalid Request: Only one initialization request is allowed", -32600);
    }
    if (draining) {
      metrics.recordSession("refused_draining");
      return refuse(
        503,
        "This server is shutting down and takes no new sessions; connect again (behind a load balancer, " +
          "another replica takes it).",
        -32000,
        { "retry-after": "1" },
      );
    }
    // At the cap, the least recently used session with nothing running makes room.
    if (sessions.size + opening >= options.maxSessions) {
      const [id, idle] = [...sessions].filter(([, session]) => session.pending.size === 0)
        .sort(([, a], [, b]) => a.lastUsed - b.lastUsed)[0] ?? [];
      if (id && idle) {
        remember(id, "evicted");
        app.runtime.logger.log(
          "info",
          `closing the least recently used idle session to make room (cap ${options.maxSessions})`,
        );
        await closeSession(id, idle, "evicted");
      }
    }
    if (sessions.size + opening >= options.maxSessions) {
      metrics.recordSession("refused_full");
      return refuse(
        503,
        `Too many sessions, all busy (at most ${options.maxSessions}); try again when a call has finished.`,
      );
    }
    opening++;
    try {
      // Task runs end after their creation was answered; each is counted when it ends.
      const created = app.newSession({
        onTaskFinished: (tool, result, wallMs) => recordResult(metrics, tool, result, wallMs),
      });
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => crypto.randomUUID(),
        maxRequestBodySize: maxBodyBytes,
        onsessioninitialized: (id) => {
          sessions.set(id, session);
          metrics.recordSession("created");
        },
        onsessionclosed: (id) => {
          if (sessions.get(id) === session) closeSession(id, session, "closed");
        },
      });
      const session: Session = { transport, close: created.close, lastUsed: Date.now(), pending: new Map() };
      try {
        await created.server.connect(transport);
        watch(transport, session);
        const response = await transport.handleRequest(request, { parsedBody: body });
        // A request the transport still refused never became a session: free its interpreter now.
        if (transport.sessionId === undefined) await created.close().catch(() => {});
        return response;
      } catch (error) {
        await created.close().catch(() => {});
        throw error;
      }
    } finally {
      opening--;
    }
  };

  /** Follows a session's JSON-RPC traffic: requests in flight (for the drain) and tool results (metrics). */
  const watch = (transport: WebStandardStreamableHTTPServerTransport, session: Session) => {
    const receive = transport.onmessage;
    transport.onmessage = (message, extra) => {
      const m = message as { id?: string | number; method?: string; params?: Record<string, unknown> };
      if (m.method !== undefined && m.id !== undefined) {
        const name = m.method === "tools/call" ? m.params?.name : null;
        session.pending.set(m.id, {
          tool: typeof name === "string" ? name : null,
          started: performance.now(),
        });
      } else if (m.method === "notifications/cancelled") {
        // The SDK sends no response to a cancelled request.
        const id = m.params?.requestId;
        const call = typeof id === "string" || typeof id === "number" ? session.pending.get(id) : undefined;
        if (call?.tool) metrics.recordRun(call.tool, "cancelled", performance.now() - call.started);
        if (call) session.pending.delete(id as string | number);
      }
      receive?.(message, extra);
    };
    const send = transport.send.bind(transport);
    transport.send = async (message: JSONRPCMessage, sendOptions) => {
      const m = message as { id?: string | number; method?: string; result?: unknown; error?: unknown };
      const call = m.method === undefined && m.id !== undefined ? session.pending.get(m.id) : undefined;
      try {
        await send(message, sendOptions);
      } finally {
        if (call) {
          session.pending.delete(m.id as string | number);
          if (call.tool) recordResult(metrics, call.tool, m.result, performance.now() - call.started);
          settled();
        }
      }
    };
  };

  return new Promise((resolve) => {
    let stopping: Promise<void> | undefined;
    const listener = Deno.serve({
      hostname: options.host,
      port: options.port,
      onListen: (addr) => {
        policy.port = addr.port;
        const url = `http://${
          options.host.includes(":") ? `[${options.host}]` : options.host
        }:${addr.port}/mcp`;
        const shutdown = () =>
          stopping ??= (async () => {
            draining = true;
            clearInterval(sweep);
            await Promise.all([...sessions].map(([id, session]) => closeSession(id, session, "closed")));
            await listener.shutdown();
          })();
        resolve({
          url,
          metrics,
          shutdown,
          drain: async (graceMs) => {
            draining = true;
            const waiting = inFlight();
            if (waiting > 0) {
              app.runtime.logger.log(
                "info",
                `draining: waiting up to ${graceMs} ms for ${waiting} request(s) in flight; no new sessions`,
              );
              await new Promise<void>((done) => {
                const timer = setTimeout(wake, graceMs);
                function wake() {
                  clearTimeout(timer);
                  idleWaiters.delete(wake);
                  done();
                }
                idleWaiters.add(wake);
              });
            }
            await shutdown();
          },
        });
      },
    }, (request) =>
      handle(request).catch((error) => {
        app.runtime.logger.log("error", `HTTP request failed: ${(error as Error).message}`);
        return jsonError(500, "Internal error");
      }));
  });
}

/** Reads a body as text, or null as soon as it is longer than `maxBytes`. */
async function readCapped(request: Request, maxBytes: number): Promise<string | null> {
  if (!request.body) return "";
  const reader = request.body.getReader();
  const decoder = new TextDecoder();
  let received = 0;
  let text = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
      if (received > maxBytes) {
        await reader.cancel().catch(() => {});
        return null;
      }
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
  return text + decoder.decode();
}

function tooLarge(
  maxBytes: number,
  refuse: (status: number, message: string) => Response,
): Response {
  return refuse(
    413,
    `Payload Too Large: a request body may hold at most ${maxBytes} bytes; send less code per call`,
  );
}

/** Counts one tool call from its JSON-RPC result. */
function recordResult(metrics: Metrics, tool: string, result: unknown, wallMs: number): void {
  const r = result as {
    isError?: boolean;
    structuredContent?: { status?: unknown; durationMs?: unknown; stateReset?: unknown; installed?: unknown };
  } | undefined;
  // A task was created; its run is counted when it ends (see `onTaskFinished` above).
  if (r && typeof r === "object" && "task" in r) return;
  const structured = r?.structuredContent;
  // No structured result: a JSON-RPC error or arguments the schema refused; the code never ran.
  const status = typeof structured?.status === "string" ? structured.status : "invalid";
  metrics.recordRun(
    tool,
    status,
    typeof structured?.durationMs === "number" ? structured.durationMs : wallMs,
  );
  if (structured?.stateReset === true) metrics.recordRestart();
  if (Array.isArray(structured?.installed)) metrics.recordInstalls(structured.installed.length);
}

/** What the gauges read. */
interface GaugeSources {
  app: App;
  sessionsOpen: () => number;
  maxSessions: number;
  inFlight: () => number;
  draining: () => boolean;
  readiness: () => Promise<string[]>;
  snapshotPresent: () => Promise<boolean>;
  packageCache: string;
}

/** How long a measured package cache size is reused; walking a large cache on every scrape is wasteful. */
const CACHE_SIZE_TTL_MS = 60_000;

function registerGauges(metrics: Metrics, sources: GaugeSources): void {
  const started = Date.now() / 1000;
  metrics.gauge("code_runner_info", "Versions of this server, as labels.", () => [
    { labels: { version: VERSION, deno: Deno.version.deno, pyodide: PYODIDE_VERSION }, value: 1 },
  ]);
  metrics.gauge("process_start_time_seconds", "When the server started (Unix time).", () => started);
  metrics.gauge(
    "process_resident_memory_bytes",
    "Resident memory of the server process itself.",
    () => Deno.memoryUsage().rss,
  );
  metrics.gauge("code_runner_http_sessions_open", "MCP sessions open.", sources.sessionsOpen);
  metrics.gauge("code_runner_http_sessions_max", "Sessions allowed at once.", () => sources.maxSessions);
  metrics.gauge(
    "code_runner_http_requests_in_flight",
    "JSON-RPC requests received and not answered yet.",
    sources.inFlight,
  );
  metrics.gauge("code_runner_draining", "1 while shutting down (SIGTERM).", () => sources.draining() ? 1 : 0);
  metrics.gauge(
    "code_runner_ready",
    "1 when /readyz answers 200.",
    async () => (await sources.readiness()).length ? 0 : 1,
  );
  let children: { at: number; stats: ReturnType<typeof childProcessStats> } | undefined;
  const stats = () => {
    // One /proc scan serves both gauges of a scrape.
    if (!children || Date.now() - children.at > 1000) {
      children = {
        at: Date.now(),
        stats: childProcessStats(Deno.pid, { python: HOST_URL, javascript: LAUNCHER_URL }),
      };
    }
    return children.stats;
  };
  metrics.gauge(
    "code_runner_child_processes",
    "Live child processes: python (one interpreter per session, plus spares), javascript (launchers " +
      "waiting in the pool or running code), other (Linux only).",
    () => Object.entries(stats()).map(([kind, { count }]) => ({ labels: { kind }, value: count })),
  );
  metrics.gauge(
    "code_runner_child_resident_memory_bytes",
    "Resident memory of the child processes, by kind (Linux only).",
    () =>
      Object.entries(stats()).map(([kind, { residentBytes }]) => ({
        labels: { kind },
        value: residentBytes,
      })),
  );
  metrics.gauge(
    "code_runner_process_groups",
    "Process groups the server would kill on exit.",
    () => sources.app.runtime.groups.size,
  );
  metrics.gauge(
    "code_runner_python_snapshot_present",
    "1 when the Python memory snapshot is built.",
    async () => await sources.snapshotPresent().catch(() => false) ? 1 : 0,
  );
  let cacheSize: { at: number; bytes: number } | undefined;
  metrics.gauge(
    "code_runner_package_cache_bytes",
    "Size of the Python package cache (including the snapshot), measured at most once a minute.",
    async () => {
      if (!cacheSize || Date.now() - cacheSize.at > CACHE_SIZE_TTL_MS) {
        cacheSize = { at: Date.now(), bytes: await directorySize(sources.packageCache) };
      }
      return cacheSize.bytes;
    },
  );
}
