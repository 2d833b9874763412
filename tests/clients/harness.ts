/**
 * Runs a third-party MCP client script (tests/clients/*_client.py, ai_sdk_client.mjs) against the real bin,
 * over stdio (the client starts the server, as its users' configs do) or Streamable HTTP (the test starts
 * it), and checks the report the script prints.
 */
import assert from "node:assert/strict";
import { BIN, serverEnv } from "../_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

/** Where a client script finds the server. */
export type ClientConfig =
  | { transport: "stdio"; command: string; args: string[]; env: Record<string, string> }
  | { transport: "http"; url: string };

/** One tool call as a client script reports it. */
export interface ReportedCall {
  isError: boolean;
  structured: {
    status: string;
    stdout: string;
    stderr: string;
    result?: string;
    attachments?: Array<{ mimeType: string; bytes: number }>;
  } | null;
  text: string;
  images: Array<{ mimeType: string; bytes: number }>;
}

/** What a client script prints on its last line. */
export interface ClientReport {
  client: string;
  tools: string[];
  calls: Record<"js_ok" | "py_ok" | "js_error" | "py_error" | "js_image" | "py_image", ReportedCall>;
  /** The call after a cancelled one, in the same session: `finished` must not have been set. */
  afterCancel?: ReportedCall;
  /** Whether the cancelled call was abandoned rather than answered. */
  cancelTookEffect?: boolean;
  /** `notifications/message` the client received (it never sets a level). */
  logs?: Array<{ level: string; data: unknown }>;
  /** The AI SDK: `run_python` called through the SDK's own tool wrapper, as `generateText()` calls it. */
  viaTool?: ReportedCall;
  /** Errors the client reported on the side (the AI SDK's `onUncaughtError`). */
  errors?: string[];
}

/** A finished client script. */
export interface ClientRun {
  code: number;
  stderr: string;
  report: ClientReport | null;
}

let installing: Promise<void> | undefined;

/** Installs the pinned clients once per test process (tests/clients/install.sh skips what is there). */
export function clientsInstalled(): Promise<void> {
  installing ??= (async () => {
    const { code, stdout, stderr } = await new Deno.Command("bash", {
      args: [`${ROOT}tests/clients/install.sh`],
      stdin: "null",
    }).output();
    assert.equal(code, 0, `install.sh failed:\n${decoder.decode(stdout)}\n${decoder.decode(stderr)}`);
  })();
  return installing;
}

/** A Python interpreter of a venv made by install.sh. */
export function venvPython(name: "sdk1" | "sdk2"): string {
  return `${ROOT}.cache/clients-venv/${name}/bin/python`;
}

/** The config of a client that starts the bin itself over stdio, with Deno's cache and CA settings. */
export function stdioConfig(): ClientConfig {
  return { transport: "stdio", command: Deno.execPath(), args: ["run", "-A", BIN], env: serverEnv() };
}

/** Runs a client script to its end; a client that hangs is killed after `limitMs` (a guard, not a check). */
export async function runClient(
  command: string,
  args: string[],
  options: { config: ClientConfig; limitMs?: number },
): Promise<ClientRun> {
  const { code, stdout, stderr } = await new Deno.Command(command, {
    args: [...args, JSON.stringify(options.config)],
    cwd: ROOT,
    // No __pycache__ left in tests/clients.
    env: { PYTHONDONTWRITEBYTECODE: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(options.limitMs ?? 300_000),
  }).output();
  const last = decoder.decode(stdout).trim().split("\n").at(-1) ?? "";
  let report: ClientReport | null = null;
  try {
    report = JSON.parse(last) as ClientReport;
  } catch {
    // No report: the script failed before printing it; the exit code and stderr say why.
  }
  return { code, stderr: decoder.decode(stderr), report };
}

/** A server started with `--http --port 0` on loopback. */
export interface HttpServer {
  url: string;
  stop(): Promise<void>;
}

/** Starts the bin over Streamable HTTP and waits until it says where it listens. */
export async function startHttpServer(): Promise<HttpServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BIN, "--http", "--port", "0"],
    env: serverEnv(),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let url: string | undefined;
  while (url === undefined) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    url = text.match(/ at (http:\/\/[^\s;]+)/)?.[1];
  }
  // Keep draining stderr so the server never blocks on a full pipe.
  const draining = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
    await draining;
  };
  if (url === undefined) {
    await stop();
    throw new Error(`the HTTP server did not start:\n${text}`);
  }
  return { url, stop };
}

/** The report of a run that must have ended cleanly: exit code 0, no traceback, a report. */
export function cleanReport(run: ClientRun): ClientReport {
  // The Python SDK 1.x raises BrokenResourceError on exit when the server writes after stdin closed.
  assert.doesNotMatch(run.stderr, /Traceback|BrokenResourceError|ExceptionGroup|Unhandled/, run.stderr);
  assert.equal(run.code, 0, `the client exited with ${run.code}:\n${run.stderr}`);
  assert.ok(run.report, `no report:\n${run.stderr}`);
  return run.report;
}

const LEVELS_BELOW_DEFAULT = new Set(["debug"]);

/** Asserts what every client must see: both tools listed, results, errors and images as the server sent them. */
export function assertCalls(report: ClientReport): void {
  assert.deepEqual([...report.tools].sort(), ["run_javascript", "run_python"]);
  const { js_ok, py_ok, js_error, py_error, js_image, py_image } = report.calls;
  for (const [name, call] of Object.entries(report.calls)) {
    assert.ok(call.structured, `${name}: no structuredContent`);
    assert.equal(call.isError, call.structured.status !== "ok", `${name}: isError disagrees with status`);
    // Nothing in these calls was killed; the text must not say so (issue 10, bug 1).
    assert.doesNotMatch(call.text, /killed/, `${name}: ${call.text}`);
  }
  assert.equal(js_ok.structured?.stdout, "42\n");
  assert.match(js_ok.text, /^status: ok \(exit code 0, \d+ ms\)\n/);
  assert.equal(py_ok.structured?.result, "45");
  assert.match(py_ok.text, /^status: ok \(\d+ ms\)\n--- result ---\n45$/);
  assert.equal(js_error.isError, true);
  assert.equal(js_error.structured?.status, "error");
  assert.match(js_error.structured?.stderr ?? "", /boom/);
  assert.match(js_error.text, /^status: error \(exit code 1, \d+ ms\)\n/);
  assert.equal(py_error.isError, true);
  assert.equal(py_error.structured?.status, "error");
  assert.match(py_error.structured?.stderr ?? "", /ZeroDivisionError/);
  assert.match(py_error.text, /^status: error \(\d+ ms\)\n/);
  for (const [name, call] of [["js_image", js_image], ["py_image", py_image]] as const) {
    assert.deepEqual(call.images, [{ mimeType: "image/png", bytes: 70 }], name);
    // The listed size is the PNG's, not its base64's (issue 10, bug 6).
    assert.deepEqual(call.structured?.attachments?.map((a) => a.bytes), [70], name);
  }
  for (const log of report.logs ?? []) {
    assert.ok(!LEVELS_BELOW_DEFAULT.has(log.level), `a ${log.level} message before any logging/setLevel`);
  }
}

/** Asserts that the cancelled call stopped: the next call in the session found `finished` unset. */
export function assertCancelled(report: ClientReport): void {
  assert.equal(report.cancelTookEffect ?? true, true, "the cancelled call was answered instead");
  assert.ok(report.afterCancel, "no call after the cancel");
  assert.equal(report.afterCancel.structured?.status, "ok", report.afterCancel.text);
  assert.equal(report.afterCancel.structured?.result, "False", "the cancelled call ran to its end");
}
