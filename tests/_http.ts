/**
 * Test helpers for Streamable HTTP: start the real bin with --http, connect the SDK client, send raw HTTP
 * (to set a Host header, which fetch() does not allow), and read /metrics.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { BIN, serverEnv, type ToolOutput, toolOutput } from "./_helpers.ts";

/** The token the HTTP tests use. */
export const TOKEN = "test-token-0123456789abcdef";

/** A bin started with --http. */
export interface HttpTestServer {
  /** The MCP URL it printed, or undefined when it did not start. */
  url: string | undefined;
  /** Its port (0 when it did not start). */
  port: number;
  /** What it wrote to stderr until it listened. */
  text: string;
  child: Deno.ChildProcess;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<void>;
}

/** Starts the bin over HTTP on a free loopback port; resolves once it says it listens (or exits). */
export async function startHttp(env: Record<string, string>, args: string[] = []): Promise<HttpTestServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BIN, "--http", "--port", "0", ...args],
    env: serverEnv(env),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream());
  let text = "";
  const reader = lines.getReader();
  while (!/at (http:[^\s;]+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  // The rest of stderr is drained, so the server never blocks on a full pipe.
  lines.pipeTo(new WritableStream()).catch(() => {});
  const url = text.match(/at (http:[^\s;]+)/)?.[1];
  return {
    url,
    port: url ? Number(new URL(url).port) : 0,
    text,
    child,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
    },
  };
}

/** Connects an SDK client to `url`. */
export async function connect(url: string, token: string | null = TOKEN): Promise<Client> {
  const client = new Client({ name: "http-test", version: "0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: token ? { headers: { authorization: `Bearer ${token}` } } : {},
    }),
  );
  return client;
}

/** Calls `run_python` on a client. */
export async function py(client: Client, code: string, timeout = 120_000): Promise<ToolOutput> {
  return toolOutput(
    await client.callTool({ name: "run_python", arguments: { code } }, undefined, { timeout }),
  );
}

/** A raw HTTP/1.1 exchange with a loopback port; returns the status and the headers and body as text. */
export async function rawHttp(
  port: number,
  request: { method?: string; path?: string; headers: Record<string, string>; body?: string },
): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const body = new TextEncoder().encode(request.body ?? "");
    const head = [
      `${request.method ?? "POST"} ${request.path ?? "/mcp"} HTTP/1.1`,
      ...Object.entries({ connection: "close", "content-length": String(body.length), ...request.headers })
        .map(([name, value]) => `${name}: ${value}`),
      "",
      "",
    ].join("\r\n");
    await conn.write(new TextEncoder().encode(head));
    if (body.length) await conn.write(body);
    let text = "";
    const buffer = new Uint8Array(65536);
    const decoder = new TextDecoder();
    // Enough to see the status line, headers and a JSON error; SSE streams are not read to their end.
    while (!/\r\n\r\n[\s\S]*\S/.test(text) || text.length < 12) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    return { status: Number(text.slice(9, 12)), text };
  } finally {
    conn.close();
  }
}

/** The body of an `initialize` request. */
export function initializeBody(id = 1): Record<string, unknown> {
  return {
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
  };
}

/** Scrapes `/metrics` of a server and returns the samples by their full name with labels. */
export async function scrape(url: string, token: string | null = TOKEN): Promise<Map<string, number>> {
  const response = await fetch(new URL("/metrics", url), {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}: ${text}`);
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** Polls an async check until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventuallyAsync(check: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return await check().catch(() => false);
}
