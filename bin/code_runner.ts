#!/usr/bin/env -S deno run -A
/**
 * The code-runner-mcp stdio server: `deno run -A jsr:@mcpc/code-runner-mcp/bin`.
 *
 * @module
 */
import { ConfigError, ENVIRONMENT_VARIABLES, loadConfig } from "../src/config.ts";
import { createApp } from "../src/app.ts";
import { describePermissions } from "../src/permissions.ts";
import { serveStdio } from "../src/stdio.ts";
import { VERSION } from "../src/version.ts";

const HELP =
  `code-runner-mcp ${VERSION} — an MCP server that runs JavaScript/TypeScript and Python in a sandbox.

Usage: deno run -A jsr:@mcpc/code-runner-mcp/bin [--help | --version]

It speaks MCP over stdin/stdout; start it from an MCP client (Claude Desktop, Cursor, …):
  { "command": "deno", "args": ["run", "-A", "jsr:@mcpc/code-runner-mcp/bin"] }

Environment variables:
${Object.entries(ENVIRONMENT_VARIABLES).map(([name, text]) => `  ${name}\n      ${text}`).join("\n")}

Runs never see the server's environment; only download settings (DENO_CERT, SSL_CERT_FILE,
HTTPS_PROXY, NPM_CONFIG_REGISTRY, …) and variables named in --allow-env=NAME reach them.`;

async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.error(HELP);
    return 0;
  }
  if (args.includes("--version") || args.includes("-V")) {
    console.error(VERSION);
    return 0;
  }
  if (args.length > 0) {
    console.error(`code-runner-mcp: unknown argument ${JSON.stringify(args[0])}; see --help`);
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
  const app = await createApp(config);
  if (Deno.stdin.isTerminal()) {
    console.error(
      [
        `code-runner-mcp ${VERSION}: an MCP server speaking JSON-RPC on stdin/stdout ` +
        "(tools: run_javascript, run_python).",
        `  permissions for runs: ${describePermissions(config.permissions)}`,
        `  limits: timeout ${config.timeoutMs} ms (max ${config.maxTimeoutMs}), memory ` +
        `${config.memoryLimitMb} MiB, output ${config.outputLimitBytes} bytes/stream, ` +
        `${config.maxConcurrency} runs at once; Python memory ${config.pythonMemoryLimitMb} MiB`,
        "It is meant to be started by an MCP client, e.g. in claude_desktop_config.json:",
        '  "code-runner": { "command": "deno", "args": ["run", "-A", "jsr:@mcpc/code-runner-mcp/bin"] }',
        "To try it by hand: npx @modelcontextprotocol/inspector deno run -A jsr:@mcpc/code-runner-mcp/bin",
        "Press Ctrl-C to stop. Run with --help for every setting.",
      ].join("\n"),
    );
  }
  await serveStdio(app);
  return -1;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  if (code >= 0) Deno.exit(code);
}
