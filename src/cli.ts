/**
 * The human side of the bin: `run` a file or stdin through the same sandbox, and `doctor`.
 *
 * @module
 */
import { extname, join } from "node:path";
import type { Runtime } from "./runtime.ts";
import { describePermissions } from "./permissions.ts";
import { DEFAULT_PYODIDE_PACKAGES_URL, PYODIDE_VERSION } from "./python/distribution.ts";
import type { RunResult } from "./result.ts";
import { VERSION } from "./version.ts";

// Only in these human commands is stdout for people; the MCP server never calls them.
const encoder = new TextEncoder();
const stdoutIsTerminal = Deno.stdout.isTerminal();
const stderrIsTerminal = Deno.stderr.isTerminal();
const write = (stream: typeof Deno.stdout, terminal: boolean, text: string) => {
  const bytes = encoder.encode(terminal ? escapeControls(text) : text);
  for (let offset = 0; offset < bytes.length;) offset += stream.writeSync(bytes.subarray(offset));
};
const print = (text: string) =>
  write(Deno.stdout, stdoutIsTerminal, text.endsWith("\n") ? text : `${text}\n`);
const printError = (text: string) =>
  write(Deno.stderr, stderrIsTerminal, text.endsWith("\n") ? text : `${text}\n`);

/**
 * Control characters made visible, for text from the sandbox bound for a terminal. Security: escape
 * sequences (OSC 52 writes the clipboard, OSC 8 makes links; others set the title or clear the screen)
 * from untrusted output must not reach the terminal as commands. Newlines and tabs stay.
 *
 * @example
 * ```ts
 * if (escapeControls("a\x1b]52;c;eA==\x07b\n") !== "a\\x1b]52;c;eA==\\x07b\n") throw new Error();
 * ```
 */
export function escapeControls(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g,
    (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** `run <file | ->`: runs the code, prints its output, and returns the exit code. */
export async function runCommand(
  runtime: Runtime,
  args: { path: string; python: boolean; timeoutMs?: number },
): Promise<number> {
  const python = args.python || extname(args.path).toLowerCase() === ".py";
  const code = args.path === "-"
    ? new TextDecoder().decode(await new Response(Deno.stdin.readable).arrayBuffer())
    : await Deno.readTextFile(args.path);
  const timeoutMs = args.timeoutMs ?? runtime.config.timeoutMs;
  const result: RunResult & { result?: string } = python
    ? await runtime.python.run({ code, packages: [], timeoutMs, reset: false }, {
      onProgress: (m) => printError(`… ${m}`),
    })
    : await runtime.javascript.run({ code, timeoutMs });
  if (result.stdout) write(Deno.stdout, stdoutIsTerminal, result.stdout);
  if (result.stderr) write(Deno.stderr, stderrIsTerminal, result.stderr);
  if (result.result !== undefined) print(result.result);
  for (const attachment of result.attachments ?? []) {
    printError(
      `[${attachment.mimeType}${attachment.name ? ` ${attachment.name}` : ""} returned; not shown here]`,
    );
  }
  if (result.status !== "ok") printError(`${result.status}: ${result.message ?? ""}`.trim());
  if (result.status === "ok") return 0;
  return result.exitCode && result.exitCode > 0 ? result.exitCode : 1;
}

/** `doctor`: prints the effective configuration, caches, versions and whether the package sources answer. */
export async function doctorCommand(runtime: Runtime): Promise<number> {
  const { config } = runtime;
  const packageCache = runtime.interpreters.broker.cacheDir;
  print(`code-runner-mcp ${VERSION} on Deno ${Deno.version.deno}, Pyodide ${PYODIDE_VERSION} (Python 3.14)`);
  print(`permissions for runs: ${describePermissions(config.permissions)}`);
  print(
    `limits: timeout ${config.timeoutMs} ms (max ${config.maxTimeoutMs}), memory ${config.memoryLimitMb} MiB ` +
      `(Python ${config.pythonMemoryLimitMb} MiB), output ${config.outputLimitBytes} bytes/stream, ` +
      `${config.maxConcurrency} JavaScript runs at once, installs ${config.installTimeoutMs} ms`,
  );
  print(`Deno cache (DENO_DIR): ${runtime.denoDir} (${await sizeOf(runtime.denoDir)})`);
  print(`package cache: ${packageCache} (${await sizeOf(packageCache)})`);
  const upstreams = await runtime.codeMode?.summaries() ?? [];
  print(
    `code mode (CODE_RUNNER_MCP_CONFIG): ${
      upstreams.length
        ? upstreams.map((u) =>
          `${u.name} (${u.transport}: ${u.target}${u.tools ? `; tools ${u.tools.join(", ")}` : ""})`
        )
          .join(", ")
        : "no upstream MCP servers"
    }`,
  );
  const snapshots = await Array.fromAsync(Deno.readDir(join(packageCache, "snapshots"))).catch(() => []);
  print(
    `Python snapshot: ${
      snapshots.some((e) => e.name.endsWith(".bin")) ? "present" : "not built yet (built on first use)"
    }`,
  );
  const pyodideUrl = config.pyodidePackagesUrl ?? DEFAULT_PYODIDE_PACKAGES_URL;
  const check = async (name: string, url: string) => {
    const verdict = await probe(url);
    print(`${name}: ${url} ${verdict.ok ? "✓ reachable" : `✗ ${verdict.detail}`}`);
    return verdict.ok;
  };
  const distribution = await check("Pyodide packages", `${pyodideUrl}pyodide-lock.json`);
  const indexes: boolean[] = [];
  for (const index of config.pypiIndexUrls) indexes.push(await check("package index", `${index}/micropip/`));
  const anyIndex = indexes.some(Boolean);
  if (distribution) {
    print(
      "Python packages: micropip and Pyodide's builds (numpy, pandas, …) from the Pyodide distribution, other " +
        "packages from the package indexes",
    );
  } else if (anyIndex) {
    print(
      "Python packages: the Pyodide distribution is unreachable, so micropip and pure-Python packages come " +
        "from the package indexes; packages built for Pyodide (numpy, pandas, …) install only if cached until " +
        "CODE_RUNNER_PYODIDE_PACKAGES_URL points to a reachable mirror of it",
    );
  } else {
    print("Python packages: no source is reachable; only packages already cached install");
  }
  // The default distribution (Pyodide's CDN) may be blocked where PyPI is not: then the indexes serve.
  const healthy = indexes.every(Boolean) && (distribution || !config.pyodidePackagesUrl);
  if (!healthy) {
    print(
      "Unreachable sources: packages not yet cached cannot be installed (see CODE_RUNNER_*_URL(S) in --help).",
    );
  }
  const result = await runtime.javascript.run({ code: "console.log('ok')", timeoutMs: 30_000 });
  print(
    `JavaScript sandbox: ${result.stdout === "ok\n" ? "✓ works" : `✗ ${result.message ?? result.stderr}`}`,
  );
  const python = await runtime.python.run({ code: "1 + 1", packages: [], timeoutMs: 30_000, reset: false });
  print(`Python sandbox: ${python.result === "2" ? "✓ works" : `✗ ${python.message ?? python.stderr}`}`);
  return healthy && result.stdout === "ok\n" && python.result === "2" ? 0 : 1;
}

async function probe(url: string): Promise<{ ok: boolean; detail: string }> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    await response.body?.cancel();
    return { ok: response.ok, detail: `HTTP ${response.status}` };
  } catch (error) {
    return { ok: false, detail: (error as Error).message.split("\n")[0] ?? "unreachable" };
  }
}

async function sizeOf(dir: string): Promise<string> {
  let bytes = 0;
  const walk = async (path: string): Promise<void> => {
    for await (const entry of Deno.readDir(path)) {
      const child = join(path, entry.name);
      if (entry.isDirectory) await walk(child);
      else if (entry.isFile) bytes += (await Deno.stat(child).catch(() => ({ size: 0 }))).size;
    }
  };
  try {
    await walk(dir);
  } catch {
    return "missing";
  }
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
