/**
 * The fixed main module of every JavaScript run.
 *
 * Security: Deno loads the main module's static imports without permission checks, so user code must
 * never be the main module. The launcher is; it loads the user's `main.ts` with a dynamic `import()`,
 * and every import that file makes is then checked against the run's permissions.
 *
 * @module
 */

/** Name of the user's code file inside the run's working directory. */
export const USER_MODULE = "main.ts";

/** Name of code mode's socket in the run's directory (present only when the operator configured upstreams). */
export const MCP_SOCKET = ".mcp.sock";

/**
 * Body of the launcher. It runs in the child, serialized with `toString()`, so it may use only globals.
 */
async function launch(userModule: string, mcpSocket: string): Promise<void> {
  // Taken before the user's code runs, which may replace them.
  const { exit, stdin, stdout, stderr } = Deno;
  const exitCode = Object.getOwnPropertyDescriptor(Deno, "exitCode")?.get?.bind(Deno);
  const writeOut = stdout.writeSync.bind(stdout), writeErr = stderr.writeSync.bind(stderr);
  // The server starts launchers before there is code; once the code is in place it sends this run's end
  // marker and closes stdin. (`read()`, not `stdin.readable`: web streams cost 4 ms of CPU to set up.)
  let marker = "";
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(256);
  for (let read; (read = await stdin.read(buffer)) !== null;) {
    marker += decoder.decode(buffer.subarray(0, read), { stream: true });
  }
  try {
    if (Deno.statSync(mcpSocket).isSocket) installMcp(`${Deno.cwd()}/${mcpSocket}`);
  } catch {
    // No upstreams configured: no `mcp`.
  }
  // What ends both streams, for each exit code, made before the user's code runs.
  const encoder = new TextEncoder();
  const ends = Array.from({ length: 256 }, (_, code) => encoder.encode(`${marker}${code}\n`));
  const writeAll = (write: (bytes: Uint8Array) => number, bytes: Uint8Array) => {
    for (let at = 0; at < bytes.length;) at += write(bytes.subarray(at));
  };
  // Once the event loop is empty (or the code calls Deno.exit) the run is over: say so with the exit code,
  // so the server answers before this process is torn down, then exit at once instead of tearing V8 down.
  globalThis.addEventListener("unload", () => {
    const end = ends[(((exitCode?.() ?? 0) % 256) + 256) % 256];
    if (marker && end) {
      try {
        writeAll(writeOut, end);
        writeAll(writeErr, end);
      } catch {
        // A stream the code closed: the server waits for the exit instead.
      }
    }
    exit();
  });
  const url = new URL("file:///");
  url.pathname = `${Deno.cwd()}/${userModule}`;
  try {
    await import(url.href);
  } catch (error) {
    // Printed here so the report shows the user's error, not a frame of this launcher.
    const text = error instanceof Error ? (error.stack ?? String(error)) : `Uncaught ${String(error)}`;
    console.error(`error: Uncaught ${text}`);
    Deno.exit(1);
  }
}

/** A value the server answered a request with. */
interface McpReply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: { code: string; message: string };
}

/**
 * Code mode: a global `mcp` whose calls travel over the run's socket to the server, which makes them.
 * `mcp.servers.<server>.<tool>(args)` gives the structured result (else the text) and throws on an error
 * result; `mcp.call(server, tool, args)` gives the whole `{ structured, text, isError, raw }`; `mcp.list()`.
 */
function installMcp(path: string): void {
  type Conn = Deno.Conn & { ref(): void; unref(): void };
  let connecting: Promise<Conn> | null = null;
  let nextId = 1;
  const pending = new Map<number, (reply: McpReply) => void>();
  const encoder = new TextEncoder();
  const connect = () =>
    connecting ??= (async () => {
      const conn = await Deno.connect({ transport: "unix", path }) as Conn;
      // An idle channel must not keep the run alive; a call waiting for its answer does.
      conn.unref();
      (async () => {
        const decoder = new TextDecoder();
        let buffer = "";
        for await (const chunk of conn.readable) {
          buffer += decoder.decode(chunk, { stream: true });
          let newline;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const reply = JSON.parse(buffer.slice(0, newline)) as McpReply;
            buffer = buffer.slice(newline + 1);
            pending.get(reply.id)?.(reply);
            pending.delete(reply.id);
            if (!pending.size) conn.unref();
          }
        }
      })().catch(() => {}).finally(() => {
        for (const [id, resolve] of pending) {
          resolve({ id, ok: false, error: { code: "closed", message: "the channel to the server closed" } });
        }
        pending.clear();
      });
      return conn;
    })();
  const request = async (message: Record<string, unknown>): Promise<unknown> => {
    const conn = await connect();
    const id = nextId++;
    const answered = new Promise<McpReply>((resolve) => pending.set(id, resolve));
    conn.ref();
    await conn.write(encoder.encode(JSON.stringify({ ...message, id }) + "\n"));
    const reply = await answered;
    if (!reply.ok) {
      const error = new Error(reply.error?.message ?? "the call failed");
      error.name = "McpError";
      throw Object.assign(error, { code: reply.error?.code });
    }
    return reply.value;
  };
  const call = (server: string, tool: string, args: Record<string, unknown> = {}) =>
    request({ type: "mcp_call", server, tool, args }) as Promise<
      { structured?: unknown; text: string; isError: boolean; raw: unknown }
    >;
  // Any name works as a server or tool; the server says which exist. `then` is not one, so that awaiting a
  // server or tool object does not call it.
  const servers = new Proxy(Object.create(null), {
    get: (_, server) =>
      typeof server !== "string" || server === "then" ? undefined : new Proxy(Object.create(null), {
        get: (_, tool) =>
          typeof tool !== "string" || tool === "then"
            ? undefined
            : async (args: Record<string, unknown> = {}) => {
              const result = await call(server, tool, args);
              if (result.isError) throw new Error(result.text || `${server}.${tool} returned an error`);
              return result.structured ?? result.text;
            },
      }),
  });
  Object.defineProperty(globalThis, "mcp", {
    value: Object.freeze({ servers, call, list: () => request({ type: "mcp_list" }) }),
    enumerable: false,
  });
}

/** The launcher as a `data:` URL, ready to be the main module of `deno run`. */
export const LAUNCHER_URL = `data:application/javascript,${
  encodeURIComponent(
    `${installMcp.toString()}\n(${launch.toString()})(${JSON.stringify(USER_MODULE)}, ${
      JSON.stringify(MCP_SOCKET)
    });`,
  )
}`;
