/**
 * Builds everything a running server holds (runners, limits, directories) and tears it down.
 *
 * @module
 */
// @ts-types="npm:@modelcontextprotocol/sdk@1.32.2/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { join } from "node:path";
import type { Config } from "./config.ts";
import {
  DEFAULT_PYODIDE_PACKAGES_URL,
  distributionHashes,
  loadLockfile,
  pyodideRuntime,
} from "./python/distribution.ts";
import { HostProcess } from "./python/host_process.ts";
import { PackageBroker } from "./python/package_broker.ts";
import { PythonSession } from "./python/session.ts";
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
  const python = createPythonSession(config, { denoDir, runsRoot, groups, serverEnv });
  python.warm();
  const server = createServer({ config, javascript, python });
  let closing: Promise<void> | undefined;
  return {
    server,
    groups,
    runsRoot,
    denoDir,
    close() {
      closing ??= (async () => {
        await python.close();
        groups.killAll();
        await server.close().catch(() => {});
        await Deno.remove(runsRoot, { recursive: true }).catch(() => {});
      })();
      return closing;
    },
  };
}

/** What a Python session is built from. */
interface PythonContext {
  denoDir: string;
  runsRoot: string;
  groups: ProcessGroups;
  serverEnv: Readonly<Record<string, string | undefined>>;
}

/** A Python session whose host processes download packages through one broker and cache. */
export function createPythonSession(config: Config, context: PythonContext): PythonSession {
  const runtime = pyodideRuntime();
  const packageBaseUrl = config.pyodidePackagesUrl ?? DEFAULT_PYODIDE_PACKAGES_URL;
  const hashes = new Map<string, string>();
  const broker = new PackageBroker({
    cacheDir: config.packageCacheDir ?? join(context.denoDir, "code-runner-mcp", "packages"),
    sources: { pyodideBaseUrl: packageBaseUrl, indexUrls: config.pypiIndexUrls },
    distributionHashes: hashes,
  });
  let lock: Promise<string> | undefined;
  const lockText = () =>
    lock ??= (async () => {
      await Deno.mkdir(broker.cacheDir, { recursive: true });
      const { text, lock } = await loadLockfile(packageBaseUrl, runtime, async (url) => {
        const response = await broker.fetch(url);
        if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
        return await Deno.readTextFile(response.path);
      });
      for (const [name, sha256] of distributionHashes(lock)) hashes.set(name, sha256);
      return text;
    })();
  const { grants } = config.permissions;
  const netFlags = config.permissions.flags.filter((flag) => /^--(allow|deny)-net\b/.test(flag));
  if (grants.net === "all" && !netFlags.includes("--allow-net")) netFlags.push("--allow-net");
  return new PythonSession({
    installTimeoutMs: config.installTimeoutMs,
    memoryLimitMb: config.pythonMemoryLimitMb,
    maxTimeoutMs: config.maxTimeoutMs,
    startHost: async () => {
      const workDir = await Deno.makeTempDir({ dir: context.runsRoot, prefix: "py-" });
      try {
        const { host } = await HostProcess.start({
          runtime,
          lockFileContents: await lockText(),
          packageBaseUrl,
          indexUrls: config.pypiIndexUrls,
          broker,
          netFlags,
          memoryLimitMb: config.pythonMemoryLimitMb,
          outputLimitBytes: config.outputLimitBytes,
          denoDir: context.denoDir,
          workDir,
          groups: context.groups,
          serverEnv: context.serverEnv,
        });
        host.exited.finally(() => Deno.remove(workDir, { recursive: true }).catch(() => {}));
        return host;
      } catch (error) {
        await Deno.remove(workDir, { recursive: true }).catch(() => {});
        throw error;
      }
    },
  });
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
