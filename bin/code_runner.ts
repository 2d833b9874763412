#!/usr/bin/env -S deno run -A
/**
 * code-runner-mcp: `deno run -A jsr:@mcpc/code-runner-mcp/bin` serves MCP over stdio; `--http` over
 * Streamable HTTP; `run` and `doctor` are for people. Flags and configuration only; the work is in src/.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, ENVIRONMENT_VARIABLES, loadConfig } from "../src/config.ts";
import { describePermissions } from "../src/permissions.ts";
import { createRuntime } from "../src/runtime.ts";
import { exitOnSignals } from "../src/signals.ts";
import { VERSION } from "../src/version.ts";
// The MCP SDK (src/app.ts, http.ts, stdio.ts, cli.ts) is imported only after the runtime has started
// Python booting, so that the two happen at once.

const HELP =
  `code-runner-mcp ${VERSION} — an MCP server that runs JavaScript/TypeScript and Python in a sandbox.

Usage (as deno run -A jsr:@mcpc/code-runner-mcp/bin …):
  (no arguments)                  serve MCP over stdin/stdout; MCP clients start it like this
  --http [--host H] [--port P]    serve MCP over Streamable HTTP at http://H:P/mcp (default 127.0.0.1:8787),
                                  with GET /healthz, /readyz and /metrics; SIGTERM drains, then exits
  run FILE                        run FILE (.py: Python; .js/.ts/.mjs…: JavaScript) in the sandbox, print the result
  run - [--python]                the same with code from stdin (JavaScript unless --python)
        [--timeout MS]            time limit for run (default CODE_RUNNER_TIMEOUT_MS)
  doctor                          print the configuration, caches, versions, and check the package sources
  --help, --version

An MCP client config (Claude Desktop, Cursor, …):
  { "command": "deno", "args": ["run", "-A", "jsr:@mcpc/code-runner-mcp/bin"] }

Environment variables:
${Object.entries(ENVIRONMENT_VARIABLES).map(([name, text]) => `  ${name}\n      ${text}`).join("\n")}

Runs never see the server's environment; only download settings (DENO_CERT, SSL_CERT_FILE,
HTTPS_PROXY, NPM_CONFIG_REGISTRY, …) and variables named in --allow-env=NAME reach them.`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
        http: { type: "boolean" },
        host: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "8787" },
        python: { type: "boolean" },
        timeout: { type: "string" },
      },
    });
  } catch (error) {
    console.error(`code-runner-mcp: ${(error as Error).message}; see --help`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.error(HELP);
    return 0;
  }
  if (values.version) {
    console.error(VERSION);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (
    command !== undefined && !(command === "run" && rest.length === 1) &&
    !(command === "doctor" && !rest.length)
  ) {
    console.error(
      `code-runner-mcp: unknown argument ${
        JSON.stringify(command === "run" ? rest.join(" ") || "run" : command)
      }; see --help`,
    );
    return 2;
  }
  let config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`code-runner-mcp: ${error.message}`);
    return 1;
  }
  const timeoutMs = values.timeout === undefined ? undefined : Number(values.timeout);
  if (
    timeoutMs !== undefined &&
    !(Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= config.maxTimeoutMs)
  ) {
    console.error(
      `code-runner-mcp: --timeout must be a whole number of milliseconds from 1 to ${config.maxTimeoutMs}, ` +
        `got ${JSON.stringify(values.timeout)}`,
    );
    return 2;
  }
  // Signals are handled before the first child is spawned: a signal during start-up cleans up too.
  const starting = createRuntime(config, Deno.env.toObject(), { warm: command === undefined });
  const signals = exitOnSignals(() => starting.then((runtime) => runtime.close(), () => {}));
  const runtime = await starting;
  if (command === "run" || command === "doctor") {
    const { doctorCommand, runCommand } = await import("../src/cli.ts");
    try {
      return command === "doctor" ? await doctorCommand(runtime) : await runCommand(runtime, {
        path: rest[0] as string,
        python: values.python ?? false,
        timeoutMs,
      });
    } finally {
      await runtime.close();
    }
  }
  const { createApp } = await import("../src/app.ts");
  const app = await createApp(config, Deno.env.toObject(), { runtime });
  if (values.http) {
    const { serveHttp } = await import("../src/http.ts");
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      console.error(`code-runner-mcp: --port must be a port number, got ${JSON.stringify(values.port)}`);
      await app.close();
      return 2;
    }
    let served;
    try {
      served = await serveHttp(app, {
        host: values.host,
        port,
        token: config.httpToken,
        sessionIdleMs: config.httpSessionIdleMs,
        maxSessions: config.httpMaxSessions,
        allowedHosts: config.httpAllowedHosts,
        metricsPublic: config.httpMetricsPublic,
      });
    } catch (error) {
      console.error(`code-runner-mcp: ${(error as Error).message}`);
      await app.close();
      return 1;
    }
    const { drain } = served;
    signals.drainOnTerm(() => drain(config.httpDrainGraceMs));
    console.error(
      `code-runner-mcp ${VERSION}: MCP over Streamable HTTP at ${served.url}` +
        `${config.httpToken ? " (bearer token required)" : ""}; permissions for runs: ` +
        describePermissions(config.permissions),
    );
    return -1;
  }
  if (Deno.stdin.isTerminal()) {
    console.error(
      [
        `code-runner-mcp ${VERSION}: an MCP server speaking JSON-RPC on stdin/stdout ` +
        "(tools: run_javascript, run_python).",
        `  permissions for runs: ${describePermissions(config.permissions)}`,
        ...(runtime.codeMode
          ? [`  code mode: runs may call the MCP servers ${runtime.codeMode.servers.join(", ")}`]
          : []),
        `  limits: timeout ${config.timeoutMs} ms (max ${config.maxTimeoutMs}), memory ` +
        `${config.memoryLimitMb} MiB, output ${config.outputLimitBytes} bytes/stream, ` +
        `${config.maxConcurrency} runs at once; Python memory ${config.pythonMemoryLimitMb} MiB`,
        "It is meant to be started by an MCP client, e.g. in claude_desktop_config.json:",
        '  "code-runner": { "command": "deno", "args": ["run", "-A", "jsr:@mcpc/code-runner-mcp/bin"] }',
        "To try it by hand: npx @modelcontextprotocol/inspector deno run -A jsr:@mcpc/code-runner-mcp/bin",
        "or run a file: deno run -A jsr:@mcpc/code-runner-mcp/bin run script.py",
        "Press Ctrl-C to stop. Run with --help for every setting.",
      ].join("\n"),
    );
  }
  const { serveStdio } = await import("../src/stdio.ts");
  await serveStdio(app);
  return -1;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  if (code >= 0) Deno.exit(code);
}
