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
 * An empty TypeScript module the server puts in the run's directory: the launcher loads it (and removes it)
 * while it waits, so that loading the user's module later skips Deno's first-load set-up (1–2 ms).
 */
export const WARM_MODULE = ".warm.ts";

/**
 * Body of the launcher. It runs in the child, serialized with `toString()`, so it may use only globals.
 */
async function launch(userModule: string, mcpSocket: string, warmModule: string): Promise<void> {
  // Taken before the user's code runs, which may replace them.
  const { exit, stdin, stdout, stderr } = Deno;
  const exitCode = Object.getOwnPropertyDescriptor(Deno, "exitCode")?.get?.bind(Deno);
  const writeOut = stdout.writeSync.bind(stdout), writeErr = stderr.writeSync.bind(stderr);
  const fileUrl = (name: string) => {
    const url = new URL("file:///");
    url.pathname = `${Deno.cwd()}/${name}`;
    return url.href;
  };
  try {
    await import(fileUrl(warmModule));
    Deno.removeSync(warmModule);
  } catch {
    // Only slower.
  }
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
  // What ends both streams, for each exit code, made (with what writes it) before the user's code runs, which
  // may replace any prototype method. (The server kills the process once it sees the end anyway.)
  const encoder = new TextEncoder();
  const { apply } = Reflect;
  const subarray = Uint8Array.prototype.subarray;
  const ends = Array.from({ length: 256 }, (_, code) => {
    const bytes = encoder.encode(`${marker}${code}\n`);
    return { bytes, length: bytes.length };
  });
  const writeAll = (
    write: (bytes: Uint8Array) => number,
    { bytes, length }: { bytes: Uint8Array; length: number },
  ) => {
    for (let at = 0; at < length;) at += write(apply(subarray, bytes, [at]));
  };
  // Once the event loop is empty (or the code calls Deno.exit) the run is over: say so with the exit code,
  // so the server answers without waiting for this process to be torn down, then exit at once.
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
  try {
    await import(fileUrl(userModule));
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
    }, ${JSON.stringify(WARM_MODULE)});`,
  )
}`;
