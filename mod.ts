/**
 * code-runner-mcp as a library: build the MCP server yourself and connect it to any transport.
 *
 * @example
 * ```ts
 * import { createApp, loadConfig } from "jsr:@mcpc/code-runner-mcp";
 * const app = await createApp(loadConfig({ DENO_PERMISSION_ARGS: "--allow-net=example.com" }));
 * ```
 *
 * @module
 */
export { type App, type AppSession, createApp } from "./src/app.ts";
export { createRuntime, type Runtime } from "./src/runtime.ts";
export { type Config, ConfigError, DEFAULTS, loadConfig } from "./src/config.ts";
export {
  type Grant,
  parsePermissionArgs,
  PermissionArgsError,
  type PermissionKind,
  type Permissions,
} from "./src/permissions.ts";
export type { RunResult, RunStatus } from "./src/result.ts";
export { VERSION } from "./src/version.ts";
