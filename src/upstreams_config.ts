/**
 * The operator's upstream MCP servers (`CODE_RUNNER_MCP_CONFIG`): a JSON file in the shape MCP clients
 * already use, parsed into one validated {@linkcode UpstreamsConfig}. It imports nothing of the MCP SDK, so
 * the config loader can check the file at start without loading the SDK.
 *
 * @module
 */

/** An upstream started as a child process and spoken to over its stdin and stdout. */
export interface StdioUpstreamConfig {
  readonly transport: "stdio";
  /** The program; a bare name is looked up in `PATH`. */
  readonly command: string;
  readonly args: readonly string[];
  /** Variables set for the upstream on top of a minimal environment; secrets, never shown to a run. */
  readonly env: Readonly<Record<string, string>>;
  /** Its working directory (absolute), or null for the server's. */
  readonly cwd: string | null;
  /** The only tools runs may call, or null for all of them. */
  readonly tools: readonly string[] | null;
}

/** An upstream reached over Streamable HTTP. */
export interface HttpUpstreamConfig {
  readonly transport: "http";
  /** Its MCP endpoint; an http(s) URL. */
  readonly url: string;
  /** Headers sent with every request (typically `Authorization`); secrets, never shown to a run. */
  readonly headers: Readonly<Record<string, string>>;
  /** The only tools runs may call, or null for all of them. */
  readonly tools: readonly string[] | null;
}

/** One configured upstream. */
export type UpstreamConfig = StdioUpstreamConfig | HttpUpstreamConfig;

/** Every configured upstream, by the name runs call it by. */
export interface UpstreamsConfig {
  readonly servers: ReadonlyMap<string, UpstreamConfig>;
}

/** Thrown for a config file that cannot be used; the message says where and what is wrong. */
export class McpConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "McpConfigError";
  }
}

/**
 * Names of upstreams: they become property names in runs (`mcp.servers.github`), so letters, digits, `_`
 * and `-` only.
 */
export const SERVER_NAME_PATTERN: RegExp = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** Tool names as MCP allows them, generously: 1–128 characters, none of them whitespace or control. */
export const TOOL_NAME_PATTERN: RegExp = /^[^\s\p{Cc}]{1,128}$/u;

/** Names that would collide with what every JavaScript object has. */
const RESERVED_NAMES = new Set(["__proto__", "constructor", "prototype"]);

const STDIO_KEYS = ["command", "args", "env", "cwd", "tools", "type", "disabled"];
const HTTP_KEYS = ["url", "headers", "tools", "type", "disabled"];

/**
 * Parses the text of a config file; `source` names it in error messages.
 *
 * @example
 * ```ts
 * const config = parseUpstreamsConfig(
 *   '{"mcpServers": {"notes": {"command": "notes-server", "env": {"TOKEN": "s3cret"}, "tools": ["search"]}}}',
 * );
 * config.servers.get("notes")?.transport; // "stdio"
 * ```
 */
export function parseUpstreamsConfig(text: string, source = "CODE_RUNNER_MCP_CONFIG"): UpstreamsConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new McpConfigError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isRecord(json) || !isRecord(json.mcpServers)) {
    throw new McpConfigError(
      `${source} must be a JSON object with an "mcpServers" object, as MCP clients write it: ` +
        `{"mcpServers": {"name": {"command": "…", "args": […]}}}`,
    );
  }
  const servers = new Map<string, UpstreamConfig>();
  for (const [name, entry] of Object.entries(json.mcpServers)) {
    const where = `${source}: mcpServers.${name}`;
    if (!SERVER_NAME_PATTERN.test(name) || RESERVED_NAMES.has(name)) {
      throw new McpConfigError(
        `${source}: the server name ${JSON.stringify(name)} must start with a letter or _ and hold only ` +
          "letters, digits, _ and - (at most 64), and not be __proto__, constructor or prototype, because runs " +
          "use it as a property name",
      );
    }
    if (!isRecord(entry)) throw new McpConfigError(`${where} must be an object`);
    if (entry.disabled !== undefined && typeof entry.disabled !== "boolean") {
      throw new McpConfigError(`${where}.disabled must be true or false`);
    }
    if (entry.disabled === true) continue;
    servers.set(name, parseServer(entry, where));
  }
  return { servers };
}

/**
 * Reads and parses a config file.
 *
 * @example
 * ```ts
 * function example(path: string) {
 *   for (const [name, server] of readUpstreamsConfig(path).servers) console.error(name, server.transport);
 * }
 * ```
 */
export function readUpstreamsConfig(path: string): UpstreamsConfig {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw new McpConfigError(`CODE_RUNNER_MCP_CONFIG cannot be read: ${(error as Error).message}`);
  }
  return parseUpstreamsConfig(text, `CODE_RUNNER_MCP_CONFIG (${path})`);
}

function parseServer(entry: Record<string, unknown>, where: string): UpstreamConfig {
  const type = entry.type;
  if (type !== undefined && typeof type !== "string") {
    throw new McpConfigError(`${where}.type must be a string`);
  }
  if (type === "sse") {
    throw new McpConfigError(
      `${where}: the SSE transport is not supported; use the server's Streamable HTTP endpoint as "url"`,
    );
  }
  const isStdio = "command" in entry;
  const isHttp = "url" in entry;
  if (isStdio === isHttp) {
    throw new McpConfigError(
      `${where} needs either "command" (a program to start) or "url" (a Streamable HTTP endpoint), not ` +
        (isStdio ? "both" : "neither"),
    );
  }
  if (
    type !== undefined &&
    !(isStdio ? ["stdio"] : ["http", "streamable-http", "streamableHttp"]).includes(type)
  ) {
    throw new McpConfigError(
      `${where}.type ${JSON.stringify(type)} does not match its ${isStdio ? "command" : "url"}`,
    );
  }
  const allowed = isStdio ? STDIO_KEYS : HTTP_KEYS;
  for (const key of Object.keys(entry)) {
    if (!allowed.includes(key)) {
      throw new McpConfigError(
        `${where} has an unknown key ${JSON.stringify(key)}; a ${isStdio ? "stdio" : "URL"} server accepts ` +
          allowed.join(", "),
      );
    }
  }
  const tools = toolList(entry.tools, `${where}.tools`);
  if (isStdio) {
    const command = entry.command;
    if (typeof command !== "string" || command.trim() === "") {
      throw new McpConfigError(`${where}.command must be a non-empty string`);
    }
    const args = entry.args ?? [];
    if (!Array.isArray(args) || !args.every((arg) => typeof arg === "string")) {
      throw new McpConfigError(`${where}.args must be an array of strings`);
    }
    const cwd = entry.cwd ?? null;
    if (cwd !== null && (typeof cwd !== "string" || !cwd.startsWith("/"))) {
      throw new McpConfigError(`${where}.cwd must be an absolute path`);
    }
    return {
      transport: "stdio",
      command,
      args,
      env: stringMap(entry.env, `${where}.env`, /^[A-Za-z_][A-Za-z0-9_]*$/, "variable name"),
      cwd,
      tools,
    };
  }
  const url = entry.url;
  if (typeof url !== "string" || !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    throw new McpConfigError(`${where}.url must be an http(s) URL`);
  }
  const headers = stringMap(
    entry.headers,
    `${where}.headers`,
    /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/,
    "header name",
  );
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n\0]/.test(value)) throw new McpConfigError(`${where}.headers.${name} must be one line`);
  }
  return { transport: "http", url, headers, tools };
}

function toolList(value: unknown, where: string): string[] | null {
  if (value === undefined || value === null) return null;
  if (
    !Array.isArray(value) || !value.every((name) => typeof name === "string" && TOOL_NAME_PATTERN.test(name))
  ) {
    throw new McpConfigError(`${where} must be an array of tool names (the tools runs may call)`);
  }
  if (value.length === 0) {
    throw new McpConfigError(`${where} is empty, which allows no tool; list tools, or remove the server`);
  }
  return [...new Set(value as string[])];
}

function stringMap(value: unknown, where: string, namePattern: RegExp, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw new McpConfigError(`${where} must be an object of strings`);
  const entries: Array<[string, string]> = [];
  for (const [name, item] of Object.entries(value)) {
    if (!namePattern.test(name)) {
      throw new McpConfigError(`${where}: ${JSON.stringify(name)} is not a valid ${what}`);
    }
    // Security: only the name is quoted; the value may be a secret.
    if (typeof item !== "string") throw new McpConfigError(`${where}.${name} must be a string`);
    entries.push([name, item]);
  }
  // fromEntries, not assignment: a key named __proto__ stays an ordinary key.
  return Object.fromEntries(entries);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
