/**
 * Builds everything a running server holds (runners, limits, directories) and tears it down.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Config } from "./config.ts";
import { JavaScriptRunner } from "./javascript/runner.ts";
import { ConcurrencyLimiter } from "./limits.ts";
import { createServer } from "./server.ts";
import { ProcessGroups } from "./subprocess.ts";

/** A built server and the resources it owns. */
export interface App {
  readonly server: McpServer;
  readonly groups: ProcessGroups;
  /** The private directory holding every run's working directory. */
  readonly runsRoot: string;
  readonly denoDir: string;
  /** Kills every child and removes every temp directory; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Builds the server from a validated configuration.
 *
 * @example
 * ```ts
 * const app = await createApp(loadConfig(Deno.env.toObject()));
 * try { await app.server.connect(transport); } finally { await app.close(); }
 * ```
 */
export async function createApp(
  config: Config,
  serverEnv: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
): Promise<App> {
  const denoDir = await resolveDenoDir(serverEnv);
  const runsRoot = await Deno.realPath(await Deno.makeTempDir({ prefix: "code-runner-mcp-" }));
  const groups = new ProcessGroups();
  const javascript = new JavaScriptRunner({
    config,
    denoDir,
    runsRoot,
    groups,
    limiter: new ConcurrencyLimiter(config.maxConcurrency),
    serverEnv,
  });
  const server = createServer({ config, javascript });
  let closing: Promise<void> | undefined;
  return {
    server,
    groups,
    runsRoot,
    denoDir,
    close() {
      closing ??= (async () => {
        groups.killAll();
        await server.close().catch(() => {});
        await Deno.remove(runsRoot, { recursive: true }).catch(() => {});
      })();
      return closing;
    },
  };
}

/** Deno's cache directory as the running Deno sees it, so runs share the server's downloads. */
async function resolveDenoDir(env: Readonly<Record<string, string | undefined>>): Promise<string> {
  if (env.DENO_DIR) return await Deno.realPath(env.DENO_DIR).catch(() => env.DENO_DIR as string);
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).output();
  if (!success) throw new Error("`deno info --json` failed; set DENO_DIR to Deno's cache directory");
  const info = JSON.parse(new TextDecoder().decode(stdout)) as { denoDir?: unknown };
  if (typeof info.denoDir !== "string") throw new Error("`deno info --json` did not name denoDir");
  return info.denoDir;
}
