/**
 * Serves the tools over MCP Streamable HTTP: one MCP session per client session, each with its own Python
 * interpreter, bearer-token authentication, Host/Origin checks against DNS rebinding, idle expiry and a
 * cap on sessions.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/webStandardStreamableHttp"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/types"
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { App } from "./app.ts";

/** How the HTTP server listens and whom it lets in. */
export interface HttpOptions {
  host: string;
  port: number;
  /** Required as `Authorization: Bearer <token>` when set. */
  token: string | null;
  /** A session unused this long is closed. */
  sessionIdleMs: number;
  maxSessions: number;
}

/** Whether `host` is a loopback address, where running without a token is allowed. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

interface Session {
  transport: WebStandardStreamableHTTPServerTransport;
  close: () => Promise<void>;
  lastUsed: number;
}

const jsonError = (status: number, message: string, code = -32000) =>
  Response.json({ jsonrpc: "2.0", id: null, error: { code, message } }, { status });

/** Starts serving; resolves once listening, with the address and a function that stops everything. */
export function serveHttp(
  app: App,
  options: HttpOptions,
): Promise<{ url: string; shutdown: () => Promise<void> }> {
  if (!isLoopback(options.host) && !options.token) {
    throw new Error(
      `refusing to serve on ${options.host} without a token: set CODE_RUNNER_HTTP_TOKEN or ` +
        "CODE_RUNNER_HTTP_TOKEN_FILE, or listen on 127.0.0.1",
    );
  }
  const sessions = new Map<string, Session>();
  const expired = new Set<string>();
  let port = options.port;
  const allowedHost = (value: string | null) => {
    if (!value) return false;
    const [name, p] = value.startsWith("[")
      ? [value.slice(0, value.indexOf("]") + 1), value.split("]:")[1]]
      : value.split(":");
    if (Number(p ?? "80") !== port) return false;
    // Security: on loopback, only loopback names; a DNS-rebinding page arrives with its own host name.
    return isLoopback(options.host)
      ? isLoopback(name ?? "")
      : name === options.host || isLoopback(name ?? "");
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

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, session] of sessions) {
      if (now - session.lastUsed > options.sessionIdleMs) {
        sessions.delete(id);
        expired.add(id);
        session.close().catch(() => {});
      }
    }
  }, Math.min(options.sessionIdleMs, 10_000));

  const handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (url.pathname !== "/mcp") {
      return new Response("Not found: the MCP endpoint is /mcp\n", { status: 404 });
    }
    if (!allowedHost(request.headers.get("host"))) return jsonError(403, "Forbidden: unexpected Host header");
    const origin = request.headers.get("origin");
    if (origin && !(URL.canParse(origin) && allowedHost(new URL(origin).host))) {
      return jsonError(403, "Forbidden: requests from web pages of other origins are refused");
    }
    if (!authorized(request)) {
      return new Response(
        JSON.stringify({
          jsonrpc: "2.0",
          id: null,
          error: { code: -32001, message: "Unauthorized: send Authorization: Bearer <token>" },
        }),
        {
          status: 401,
          headers: {
            "content-type": "application/json",
            "www-authenticate": 'Bearer realm="code-runner-mcp"',
          },
        },
      );
    }
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId) {
      const session = sessions.get(sessionId);
      if (!session) {
        return jsonError(
          404,
          expired.has(sessionId)
            ? `Session expired after ${options.sessionIdleMs} ms without use; start a new session (initialize). Its Python state is gone.`
            : "Session not found; start a new session (initialize).",
        );
      }
      session.lastUsed = Date.now();
      return await session.transport.handleRequest(request);
    }
    if (request.method !== "POST") return jsonError(400, "Bad request: no mcp-session-id header");
    const body = await request.json().catch(() => undefined);
    const messages = Array.isArray(body) ? body : [body];
    if (!messages.some((message) => isInitializeRequest(message))) {
      return jsonError(400, "Bad request: the first request of a session must be initialize", -32600);
    }
    if (sessions.size >= options.maxSessions) {
      return jsonError(
        503,
        `Too many sessions (at most ${options.maxSessions}); close one or try again later.`,
      );
    }
    const { server, close } = app.newSession();
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, close, lastUsed: Date.now() });
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
        close().catch(() => {});
      },
    });
    await server.connect(transport);
    return await transport.handleRequest(request, { parsedBody: body });
  };

  return new Promise((resolve) => {
    const listener = Deno.serve({
      hostname: options.host,
      port: options.port,
      onListen: (addr) => {
        port = addr.port;
        const url = `http://${
          options.host.includes(":") ? `[${options.host}]` : options.host
        }:${addr.port}/mcp`;
        resolve({
          url,
          shutdown: async () => {
            clearInterval(sweep);
            await Promise.all([...sessions.values()].map((session) => session.close().catch(() => {})));
            await listener.shutdown();
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
