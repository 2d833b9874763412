/**
 * The environment a sandboxed child process receives.
 *
 * @module
 */

/**
 * Variables that only tell Deno how to download modules: CA bundles, proxies and registry mirrors.
 * Security: everything else in the server's environment (API keys, `DENO_*`/`NODE_*` switches that change
 * how Deno loads or runs code) stays out of the child.
 */
export const DOWNLOAD_SETTINGS: readonly string[] = [
  "DENO_CERT",
  "DENO_TLS_CA_STORE",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
  "NPM_CONFIG_REGISTRY",
  "JSR_URL",
];

/** What the child needs beyond the download settings. */
export interface ChildEnvOptions {
  /** Deno's cache directory, shared with the server so downloads are reused. */
  denoDir: string;
  /** The run's private directory; temp files land there. */
  workDir: string;
  /** Variables the operator chose to expose (`--allow-env=NAME,…`); copied from the server. */
  passThrough?: readonly string[];
}

/**
 * Builds a child's environment from an allow-list of the server's.
 *
 * @example
 * ```ts
 * childEnv(Deno.env.toObject(), { denoDir: "/cache/deno", workDir: "/tmp/run-1" });
 * ```
 */
export function childEnv(
  serverEnv: Readonly<Record<string, string | undefined>>,
  options: ChildEnvOptions,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...DOWNLOAD_SETTINGS, "PATH", "HOME"]) {
    const value = serverEnv[name];
    if (value !== undefined) env[name] = value;
  }
  for (const pattern of options.passThrough ?? []) {
    // Deno accepts a trailing `*` in --allow-env (`AWS_*`); pass the same names it would allow.
    const prefix = pattern.endsWith("*") ? pattern.slice(0, -1) : null;
    for (const [name, value] of Object.entries(serverEnv)) {
      if (value !== undefined && (prefix === null ? name === pattern : name.startsWith(prefix))) {
        env[name] = value;
      }
    }
  }
  env.DENO_DIR = options.denoDir;
  env.TMPDIR = options.workDir;
  env.NO_COLOR = "1";
  env.DENO_NO_UPDATE_CHECK = "1";
  return env;
}
