/**
 * Turns the operator's environment into one validated {@linkcode Config}. All defaults live here.
 *
 * @module
 */
import { parsePermissionArgs, PermissionArgsError, type Permissions } from "./permissions.ts";
import { McpConfigError, readUpstreamsConfig } from "./upstreams_config.ts";

/** Everything the operator decides. */
export interface Config {
  /** Permissions every run gets (`DENO_PERMISSION_ARGS`). */
  readonly permissions: Permissions;
  /** Timeout used when a call names none (`CODE_RUNNER_TIMEOUT_MS`). */
  readonly timeoutMs: number;
  /** Largest `timeout_ms` a call may ask for (`CODE_RUNNER_MAX_TIMEOUT_MS`). */
  readonly maxTimeoutMs: number;
  /** Memory limit of one run's process (`CODE_RUNNER_MEMORY_LIMIT_MB`). */
  readonly memoryLimitMb: number;
  /** Cap for stdout and for stderr of one run (`CODE_RUNNER_OUTPUT_LIMIT_BYTES`). */
  readonly outputLimitBytes: number;
  /** Runs executing at once; more wait in a queue (`CODE_RUNNER_MAX_CONCURRENCY`). */
  readonly maxConcurrency: number;
  /** Largest `code` argument accepted, in bytes. */
  readonly maxCodeBytes: number;
  /** Memory limit of a session's Python process (`CODE_RUNNER_PYTHON_MEMORY_LIMIT_MB`). */
  readonly pythonMemoryLimitMb: number;
  /** Python processes at once, across sessions; idle ones are reclaimed (`CODE_RUNNER_MAX_PYTHON_PROCESSES`). */
  readonly maxPythonProcesses: number;
  /** Disk a JavaScript run or a Python session may fill in its private directory (`CODE_RUNNER_DISK_LIMIT_MB`). */
  readonly diskLimitMb: number;
  /** Time limit for installing a call's packages (`CODE_RUNNER_INSTALL_TIMEOUT_MS`). */
  readonly installTimeoutMs: number;
  /** Base URL of the Pyodide distribution, or null for Pyodide's CDN (`CODE_RUNNER_PYODIDE_PACKAGES_URL`). */
  readonly pyodidePackagesUrl: string | null;
  /** PEP 503/691 simple indexes for other packages (`CODE_RUNNER_PYPI_INDEX_URLS`). */
  readonly pypiIndexUrls: readonly string[];
  /** Where downloaded packages are kept, or null for the default (`CODE_RUNNER_PACKAGE_CACHE_DIR`). */
  readonly packageCacheDir: string | null;
  /** The package cache is kept under this size, least recently used first out (`CODE_RUNNER_PACKAGE_CACHE_MAX_MB`). */
  readonly packageCacheMaxMb: number;
  /** Largest package file or index page downloaded (`CODE_RUNNER_PACKAGE_MAX_FILE_MB`). */
  readonly packageMaxFileMb: number;
  /** A directory shared with both tools (`CODE_RUNNER_WORKSPACE`, `CODE_RUNNER_WORKSPACE_MODE`=ro|rw). */
  readonly workspace: { path: string; writable: boolean } | null;
  /** Bearer token for HTTP (`CODE_RUNNER_HTTP_TOKEN`, or the file `CODE_RUNNER_HTTP_TOKEN_FILE`). */
  readonly httpToken: string | null;
  /** An HTTP session unused this long is closed (`CODE_RUNNER_HTTP_SESSION_IDLE_MS`). */
  readonly httpSessionIdleMs: number;
  /** HTTP sessions open at once (`CODE_RUNNER_HTTP_MAX_SESSIONS`). */
  readonly httpMaxSessions: number;
  /**
   * Host names (`host` or `host:port`, lowercase) accepted in `Host` and `Origin` over HTTP, or null for the
   * default: any name when a token is required, loopback names only without one
   * (`CODE_RUNNER_HTTP_ALLOWED_HOSTS`).
   */
  readonly httpAllowedHosts: readonly string[] | null;
  /** On SIGTERM, how long requests in flight may take to finish (`CODE_RUNNER_HTTP_DRAIN_GRACE_MS`). */
  readonly httpDrainGraceMs: number;
  /** Serve `GET /metrics` without the token (`CODE_RUNNER_HTTP_METRICS_PUBLIC`=1). */
  readonly httpMetricsPublic: boolean;
  /**
   * What one run may keep on disk of output the result had to cut (its streams and attachments over the
   * inline limits), in MiB; 0 keeps nothing (`CODE_RUNNER_OUTPUT_KEEP_MB`).
   */
  readonly outputKeepMb: number;
  /** What kept output of all sessions may take on disk, in MiB; the oldest goes first (`CODE_RUNNER_OUTPUT_KEEP_TOTAL_MB`). */
  readonly outputKeepTotalMb: number;
  /** How long kept output stays readable, at most until its session ends (`CODE_RUNNER_OUTPUT_KEEP_MS`). */
  readonly outputKeepMs: number;
  /** Tasks (task-augmented calls) a session may have running or queued at once (`CODE_RUNNER_MAX_TASKS`). */
  readonly maxTasksPerSession: number;
  /** Longest time a finished task's result is kept; a client may ask for less (`CODE_RUNNER_TASK_MAX_TTL_MS`). */
  readonly taskMaxTtlMs: number;
  /**
   * A JSON file of upstream MCP servers whose tools runs may call, or null for none
   * (`CODE_RUNNER_MCP_CONFIG`). Only the path is kept: the file holds the upstreams' secrets.
   */
  readonly mcpConfigPath: string | null;
}

/** Defaults, also shown in `--help` and the README. */
export const DEFAULTS = {
  timeoutMs: 30_000,
  maxTimeoutMs: 300_000,
  memoryLimitMb: 512,
  outputLimitBytes: 64 * 1024,
  maxConcurrency: 4,
  maxCodeBytes: 1024 * 1024,
  pythonMemoryLimitMb: 1024,
  diskLimitMb: 1024,
  maxPythonProcesses: 8,
  installTimeoutMs: 180_000,
  pypiIndexUrls: ["https://pypi.org/simple"],
  packageCacheMaxMb: 2048,
  packageMaxFileMb: 256,
  httpSessionIdleMs: 30 * 60 * 1000,
  httpMaxSessions: 16,
  httpDrainGraceMs: 30_000,
  outputKeepMb: 64,
  outputKeepTotalMb: 1024,
  outputKeepMs: 60 * 60 * 1000,
  maxTasksPerSession: 8,
  taskMaxTtlMs: 60 * 60 * 1000,
} as const;

/** Every environment variable the server reads, with its meaning, for `--help` and the banner. */
export const ENVIRONMENT_VARIABLES: Readonly<Record<string, string>> = {
  DENO_PERMISSION_ARGS:
    'Deno permission flags for every run, e.g. "--allow-net=api.example.com --allow-read=/data" (default: none)',
  CODE_RUNNER_TIMEOUT_MS: `default timeout of a run (default ${DEFAULTS.timeoutMs})`,
  CODE_RUNNER_MAX_TIMEOUT_MS: `largest timeout_ms a call may ask for (default ${DEFAULTS.maxTimeoutMs})`,
  CODE_RUNNER_MEMORY_LIMIT_MB:
    `resident memory limit of one run's process, MiB (default ${DEFAULTS.memoryLimitMb})`,
  CODE_RUNNER_OUTPUT_LIMIT_BYTES:
    `cap for stdout and for stderr of a run (default ${DEFAULTS.outputLimitBytes})`,
  CODE_RUNNER_MAX_CONCURRENCY:
    `JavaScript runs executing at once, others queue (default ${DEFAULTS.maxConcurrency})`,
  CODE_RUNNER_PYTHON_MEMORY_LIMIT_MB:
    `resident memory limit of a session's Python process, MiB (default ${DEFAULTS.pythonMemoryLimitMb})`,
  CODE_RUNNER_MAX_PYTHON_PROCESSES:
    `Python processes at once across all sessions; at the cap the least recently used idle session's is stopped (default ${DEFAULTS.maxPythonProcesses})`,
  CODE_RUNNER_DISK_LIMIT_MB:
    `disk a JavaScript run or a Python session may fill in its private directory, MiB (default ${DEFAULTS.diskLimitMb})`,
  CODE_RUNNER_INSTALL_TIMEOUT_MS:
    `time limit for installing a call's Python packages, not counted in its timeout (default ${DEFAULTS.installTimeoutMs})`,
  CODE_RUNNER_PYODIDE_PACKAGES_URL:
    "base URL of a Pyodide distribution mirror holding pyodide-lock.json and its wheels (default: Pyodide's CDN)",
  CODE_RUNNER_PYPI_INDEX_URLS:
    `comma-separated PEP 503/691 simple index URLs for other Python packages (default ${
      DEFAULTS.pypiIndexUrls[0]
    })`,
  CODE_RUNNER_PACKAGE_CACHE_DIR:
    "where downloaded Python packages are kept (default: code-runner-mcp/ in DENO_DIR)",
  CODE_RUNNER_PACKAGE_CACHE_MAX_MB:
    `size the package cache is kept under, least recently used files evicted first, MiB (default ${DEFAULTS.packageCacheMaxMb})`,
  CODE_RUNNER_PACKAGE_MAX_FILE_MB:
    `largest package file or index page downloaded, MiB (default ${DEFAULTS.packageMaxFileMb}, at most the cache size)`,
  CODE_RUNNER_WORKSPACE:
    "a host directory shared with every run: JavaScript sees it at its path, Python at /workspace (default: none)",
  CODE_RUNNER_WORKSPACE_MODE: "ro (default) or rw: whether runs may write the workspace",
  CODE_RUNNER_HTTP_TOKEN:
    "with --http: the bearer token clients must send (required unless --host is loopback)",
  CODE_RUNNER_HTTP_TOKEN_FILE: "with --http: a file holding the token, instead of CODE_RUNNER_HTTP_TOKEN",
  CODE_RUNNER_HTTP_SESSION_IDLE_MS:
    `with --http: close a session unused this long, with its Python state (default ${DEFAULTS.httpSessionIdleMs})`,
  CODE_RUNNER_HTTP_MAX_SESSIONS: `with --http: sessions open at once (default ${DEFAULTS.httpMaxSessions})`,
  CODE_RUNNER_HTTP_ALLOWED_HOSTS:
    "with --http: comma-separated host[:port] names accepted in Host and Origin headers (default: any with a " +
    "token, loopback names without one)",
  CODE_RUNNER_HTTP_DRAIN_GRACE_MS:
    `with --http: on SIGTERM, how long requests in flight may still take (default ${DEFAULTS.httpDrainGraceMs})`,
  CODE_RUNNER_HTTP_METRICS_PUBLIC: "with --http: 1 serves GET /metrics without the token (default 0)",
  CODE_RUNNER_OUTPUT_KEEP_MB:
    `output of one run kept on disk when its result is cut, readable as a resource, MiB; 0 keeps none (default ${DEFAULTS.outputKeepMb})`,
  CODE_RUNNER_OUTPUT_KEEP_TOTAL_MB:
    `kept output of all sessions together, oldest removed first, MiB (default ${DEFAULTS.outputKeepTotalMb})`,
  CODE_RUNNER_OUTPUT_KEEP_MS:
    `how long kept output stays readable, at most until its session ends (default ${DEFAULTS.outputKeepMs})`,
  CODE_RUNNER_MAX_TASKS:
    `tasks (task-augmented calls) a session may have running at once (default ${DEFAULTS.maxTasksPerSession})`,
  CODE_RUNNER_TASK_MAX_TTL_MS:
    `longest time a finished task's result is kept; clients may ask for less (default ${DEFAULTS.taskMaxTtlMs})`,
  CODE_RUNNER_MCP_CONFIG:
    'a JSON file of MCP servers, as MCP clients write it ({"mcpServers": {…}}), whose tools runs may call; ' +
    'a server\'s optional "tools" lists the only ones allowed (default: none)',
};

/** Thrown when a setting is invalid; the message names the variable and what it accepts. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Reads and validates the configuration.
 *
 * @example
 * ```ts
 * const config = loadConfig(Deno.env.toObject());
 * ```
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  let permissions: Permissions;
  try {
    permissions = parsePermissionArgs(env.DENO_PERMISSION_ARGS ?? "");
  } catch (error) {
    if (error instanceof PermissionArgsError) throw new ConfigError(error.message);
    throw error;
  }
  const timeoutMs = positiveInteger(env, "CODE_RUNNER_TIMEOUT_MS", DEFAULTS.timeoutMs);
  const maxTimeoutMs = positiveInteger(
    env,
    "CODE_RUNNER_MAX_TIMEOUT_MS",
    Math.max(DEFAULTS.maxTimeoutMs, timeoutMs),
  );
  if (maxTimeoutMs < timeoutMs) {
    throw new ConfigError(
      `CODE_RUNNER_MAX_TIMEOUT_MS (${maxTimeoutMs}) is below CODE_RUNNER_TIMEOUT_MS (${timeoutMs})`,
    );
  }
  const packageCacheMaxMb = positiveInteger(
    env,
    "CODE_RUNNER_PACKAGE_CACHE_MAX_MB",
    DEFAULTS.packageCacheMaxMb,
  );
  const packageMaxFileMb = positiveInteger(
    env,
    "CODE_RUNNER_PACKAGE_MAX_FILE_MB",
    Math.min(DEFAULTS.packageMaxFileMb, packageCacheMaxMb),
  );
  if (packageMaxFileMb > packageCacheMaxMb) {
    throw new ConfigError(
      `CODE_RUNNER_PACKAGE_MAX_FILE_MB (${packageMaxFileMb}) is above CODE_RUNNER_PACKAGE_CACHE_MAX_MB (${packageCacheMaxMb})`,
    );
  }
  return {
    permissions,
    timeoutMs,
    maxTimeoutMs,
    memoryLimitMb: positiveInteger(env, "CODE_RUNNER_MEMORY_LIMIT_MB", DEFAULTS.memoryLimitMb, 64),
    outputLimitBytes: positiveInteger(env, "CODE_RUNNER_OUTPUT_LIMIT_BYTES", DEFAULTS.outputLimitBytes),
    maxConcurrency: positiveInteger(env, "CODE_RUNNER_MAX_CONCURRENCY", DEFAULTS.maxConcurrency),
    maxCodeBytes: DEFAULTS.maxCodeBytes,
    pythonMemoryLimitMb: positiveInteger(
      env,
      "CODE_RUNNER_PYTHON_MEMORY_LIMIT_MB",
      DEFAULTS.pythonMemoryLimitMb,
      256,
    ),
    diskLimitMb: positiveInteger(env, "CODE_RUNNER_DISK_LIMIT_MB", DEFAULTS.diskLimitMb),
    maxPythonProcesses: positiveInteger(
      env,
      "CODE_RUNNER_MAX_PYTHON_PROCESSES",
      DEFAULTS.maxPythonProcesses,
      2,
    ),
    installTimeoutMs: positiveInteger(env, "CODE_RUNNER_INSTALL_TIMEOUT_MS", DEFAULTS.installTimeoutMs),
    pyodidePackagesUrl: optionalUrl(env, "CODE_RUNNER_PYODIDE_PACKAGES_URL", true),
    pypiIndexUrls: urlList(env, "CODE_RUNNER_PYPI_INDEX_URLS") ?? DEFAULTS.pypiIndexUrls,
    packageCacheDir: env.CODE_RUNNER_PACKAGE_CACHE_DIR?.trim() || null,
    packageCacheMaxMb,
    packageMaxFileMb,
    workspace: workspace(env),
    httpToken: httpToken(env),
    httpSessionIdleMs: positiveInteger(env, "CODE_RUNNER_HTTP_SESSION_IDLE_MS", DEFAULTS.httpSessionIdleMs),
    httpMaxSessions: positiveInteger(env, "CODE_RUNNER_HTTP_MAX_SESSIONS", DEFAULTS.httpMaxSessions),
    httpAllowedHosts: hostList(env, "CODE_RUNNER_HTTP_ALLOWED_HOSTS"),
    httpDrainGraceMs: positiveInteger(env, "CODE_RUNNER_HTTP_DRAIN_GRACE_MS", DEFAULTS.httpDrainGraceMs, 0),
    httpMetricsPublic: flag(env, "CODE_RUNNER_HTTP_METRICS_PUBLIC"),
    outputKeepMb: positiveInteger(env, "CODE_RUNNER_OUTPUT_KEEP_MB", DEFAULTS.outputKeepMb, 0),
    outputKeepTotalMb: positiveInteger(
      env,
      "CODE_RUNNER_OUTPUT_KEEP_TOTAL_MB",
      DEFAULTS.outputKeepTotalMb,
      0,
    ),
    outputKeepMs: positiveInteger(env, "CODE_RUNNER_OUTPUT_KEEP_MS", DEFAULTS.outputKeepMs),
    maxTasksPerSession: positiveInteger(env, "CODE_RUNNER_MAX_TASKS", DEFAULTS.maxTasksPerSession),
    taskMaxTtlMs: positiveInteger(env, "CODE_RUNNER_TASK_MAX_TTL_MS", DEFAULTS.taskMaxTtlMs),
    mcpConfigPath: mcpConfigPath(env),
  };
}

/** The upstreams file, checked now so that a bad one stops the server at start rather than a run later. */
function mcpConfigPath(env: Readonly<Record<string, string | undefined>>): string | null {
  const path = env.CODE_RUNNER_MCP_CONFIG?.trim();
  if (!path) return null;
  try {
    readUpstreamsConfig(path);
  } catch (error) {
    if (error instanceof McpConfigError) throw new ConfigError(error.message);
    throw error;
  }
  return path;
}

function workspace(env: Readonly<Record<string, string | undefined>>): Config["workspace"] {
  const raw = env.CODE_RUNNER_WORKSPACE?.trim();
  const mode = env.CODE_RUNNER_WORKSPACE_MODE?.trim() || "ro";
  if (mode !== "ro" && mode !== "rw") {
    throw new ConfigError(`CODE_RUNNER_WORKSPACE_MODE must be ro or rw, got ${JSON.stringify(mode)}`);
  }
  if (!raw) return null;
  let path: string;
  try {
    path = Deno.realPathSync(raw);
    if (!Deno.statSync(path).isDirectory) throw new Error("not a directory");
  } catch (error) {
    throw new ConfigError(`CODE_RUNNER_WORKSPACE must be an existing directory: ${(error as Error).message}`);
  }
  return { path, writable: mode === "rw" };
}

function httpToken(env: Readonly<Record<string, string | undefined>>): string | null {
  const file = env.CODE_RUNNER_HTTP_TOKEN_FILE?.trim();
  let token = env.CODE_RUNNER_HTTP_TOKEN?.trim() || null;
  if (file) {
    try {
      token = Deno.readTextFileSync(file).trim();
    } catch (error) {
      throw new ConfigError(`CODE_RUNNER_HTTP_TOKEN_FILE cannot be read: ${(error as Error).message}`);
    }
  }
  if (token !== null && token.length < 16) {
    throw new ConfigError("the HTTP token must be at least 16 characters long");
  }
  return token;
}

function optionalUrl(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  directory = false,
): string | null {
  const raw = env[name]?.trim();
  if (!raw) return null;
  if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) {
    throw new ConfigError(`${name} must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  return directory && !raw.endsWith("/") ? `${raw}/` : raw;
}

function urlList(env: Readonly<Record<string, string | undefined>>, name: string): string[] | null {
  const raw = env[name]?.trim();
  if (!raw) return null;
  return raw.split(/[\s,]+/).filter(Boolean).map((url) => {
    if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
      throw new ConfigError(`${name} must list http(s) URLs, got ${JSON.stringify(url)}`);
    }
    return url.replace(/\/+$/, "");
  });
}

function hostList(env: Readonly<Record<string, string | undefined>>, name: string): string[] | null {
  const raw = env[name]?.trim();
  if (!raw) return null;
  return raw.split(/[\s,]+/).filter(Boolean).map((entry) => {
    // A name, an IPv4 address or a bracketed IPv6 address, then an optional port; nothing else.
    if (!/^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?\.?)(?::\d{1,5})?$/i.test(entry)) {
      throw new ConfigError(
        `${name} must list host or host:port names (no scheme or path), got ${JSON.stringify(entry)}`,
      );
    }
    return entry.toLowerCase();
  });
}

function flag(env: Readonly<Record<string, string | undefined>>, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase() ?? "";
  if (raw === "" || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true") return true;
  throw new ConfigError(`${name} must be 1 or 0, got ${JSON.stringify(env[name])}`);
}

function positiveInteger(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  fallback: number,
  minimum = 1,
): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < minimum) {
    throw new ConfigError(`${name} must be a whole number >= ${minimum}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
