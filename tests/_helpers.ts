/**
 * Test helpers: start the real server over stdio, as a user's MCP client does, and talk to it.
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/index"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/client/stdio"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import assert from "node:assert/strict";
import { DOWNLOAD_SETTINGS } from "../src/child_env.ts";
import type { PythonRunResult } from "../src/python/session.ts";

/** The entry users run. */
export const BIN = new URL("../bin/code_runner.ts", import.meta.url).pathname;

/** Deno's cache directory as the servers the tests start use it (they inherit DENO_DIR, else the default). */
export function denoDir(): string {
  return Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
}

/** The structured result of a run, as the client receives it (attachments are listed, not carried). */
export interface RunOutput extends Omit<PythonRunResult, "attachments" | "stateReset"> {
  stateReset?: boolean;
  attachments?: Array<{ mimeType: string; name?: string; bytes: number }>;
}

/** Options of a `run_python` call. */
export interface PythonCallOptions {
  packages?: string[];
  timeoutMs?: number;
  reset?: boolean;
  signal?: AbortSignal;
  onprogress?: (progress: { progress: number; message?: string }) => void;
}

/** A connected server and client. */
export interface TestServer {
  client: Client;
  /** The server process id. */
  pid: number;
  /** What the server wrote to stderr so far. */
  stderr(): string;
  /** Calls `run_javascript` and returns the structured result plus the text and error flag. */
  js(
    code: string,
    options?: { timeoutMs?: number; signal?: AbortSignal; onprogress?: (p: { message?: string }) => void },
  ): Promise<ToolOutput>;
  /** Calls `run_python`. */
  py(code: string, options?: PythonCallOptions): Promise<ToolOutput>;
  /** Asserts that the server still answers a trivial call. */
  assertAlive(): Promise<void>;
  close(): Promise<void>;
}

/** What a tool call gave back. */
export interface ToolOutput {
  result: RunOutput;
  text: string;
  isError: boolean;
}

/**
 * The environment a user's client would give the server: the SDK passes HOME, PATH, … itself, and Deno's
 * cache and CA settings must be passed explicitly.
 */
export function serverEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ["DENO_DIR", ...DOWNLOAD_SETTINGS]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/**
 * Starts `bin/code_runner.ts` over stdio and connects an SDK client to it; `wrapper` is a command line the
 * server is started under (e.g. `setpriv …`).
 */
export async function startServer(
  extraEnv: Record<string, string> = {},
  wrapper: readonly string[] = [],
): Promise<TestServer> {
  const [command = Deno.execPath(), ...args] = [...wrapper, Deno.execPath(), "run", "-A", BIN];
  const transport = new StdioClientTransport({
    command,
    args,
    env: serverEnv(extraEnv),
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Uint8Array) => stderr += new TextDecoder().decode(chunk));
  const client = new Client({ name: "code-runner-tests", version: "0.0.0" });
  await client.connect(transport).catch((error: Error) => {
    throw new Error(`server did not start: ${error.message}\nstderr:\n${stderr}`);
  });
  const pid = transport.pid;
  assert(pid !== null, "server did not start");
  const js = async (
    code: string,
    options: { timeoutMs?: number; signal?: AbortSignal; onprogress?: (p: { message?: string }) => void } =
      {},
  ) => {
    const args: Record<string, unknown> = { code };
    if (options.timeoutMs !== undefined) args.timeout_ms = options.timeoutMs;
    const response = await client.callTool(
      { name: "run_javascript", arguments: args },
      undefined,
      { signal: options.signal, timeout: 120_000, onprogress: options.onprogress },
    );
    return toolOutput(response);
  };
  const py = async (code: string, options: PythonCallOptions = {}) => {
    const args: Record<string, unknown> = { code };
    if (options.packages) args.packages = options.packages;
    if (options.timeoutMs !== undefined) args.timeout_ms = options.timeoutMs;
    if (options.reset !== undefined) args.reset = options.reset;
    const response = await client.callTool(
      { name: "run_python", arguments: args },
      undefined,
      { signal: options.signal, timeout: 180_000, onprogress: options.onprogress },
    );
    return toolOutput(response);
  };
  return {
    client,
    pid,
    stderr: () => stderr,
    js,
    py,
    async assertAlive() {
      const { result } = await js("console.log(6 * 7)");
      assert.equal(result.stdout, "42\n", `server stopped answering; stderr:\n${stderr}`);
    },
    async close() {
      await client.close();
    },
  };
}

/** Unpacks a `tools/call` response into the result fields, the text and the error flag. */
export function toolOutput(response: unknown): ToolOutput {
  const r = response as {
    structuredContent?: RunOutput;
    content?: Array<{ type: string; text?: string }>;
    isError?: boolean;
  };
  assert(r.structuredContent, `no structuredContent in ${JSON.stringify(response)}`);
  return {
    result: r.structuredContent,
    text: (r.content ?? []).map((item) => item.text ?? "").join("\n"),
    isError: r.isError === true,
  };
}

/** Pids of the live processes whose parent is `pid` (Linux). */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid && fields[0] !== "Z") children.push(Number(entry.name));
    } catch {
      // Gone while we looked.
    }
  }
  return children;
}

/** Pids of the JavaScript runs (launcher processes) the server `pid` has running (Linux). */
export function jsRunPids(pid: number): number[] {
  return childPids(pid).filter((child) => {
    try {
      return Deno.readTextFileSync(`/proc/${child}/cmdline`).includes("function%20launch");
    } catch {
      return false;
    }
  });
}

/** The state letter of process `pid` (`R` running, `S` sleeping, `Z` zombie, …), or null when it is gone. */
export function processState(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return null;
  }
}

/** Whether `pid` is a live (not zombie) process. */
export function isAlive(pid: number): boolean {
  const state = processState(pid);
  return state !== null && state !== "Z";
}

/** The children of `pid` busy on a CPU now. */
export function busyPids(pid: number): number[] {
  return childPids(pid).filter((child) => processState(child) === "R");
}

/** The JavaScript runs of server `pid` that are busy on a CPU (idle pool launchers are asleep). */
export function busyJsRunPids(pid: number): number[] {
  return jsRunPids(pid).filter((child) => processState(child) === "R");
}

/** Every path below `dir`, relative to it (an unreadable directory shows as `…/(unreadable)`). */
export function entriesBelow(dir: string): string[] {
  const found: string[] = [];
  const walk = (path: string, prefix: string) => {
    try {
      for (const entry of Deno.readDirSync(path)) {
        found.push(`${prefix}${entry.name}`);
        if (entry.isDirectory) walk(`${path}/${entry.name}`, `${prefix}${entry.name}/`);
      }
    } catch {
      if (prefix) found.push(`${prefix}(unreadable)`);
    }
  };
  walk(dir, "");
  return found;
}

/** Live processes whose command line contains `marker` (Linux). */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(marker)) found.push(Number(entry.name));
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

/** A loopback TCP listener that counts connections, as a network canary. */
export function connectionCanary(): { port: number; connections(): number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let count = 0;
  (async () => {
    for await (const conn of listener) {
      count++;
      conn.close();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    connections: () => count,
    close: () => listener.close(),
  };
}
