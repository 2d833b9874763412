import assert from "node:assert/strict";
import { capAttachments, emptyResult, renderText, type RunResult, toToolResult } from "../../src/result.ts";

const base: RunResult = {
  status: "ok",
  stdout: "",
  stderr: "",
  exitCode: 0,
  durationMs: 12,
  timedOut: false,
  cancelled: false,
  truncated: false,
  memoryExceeded: false,
};

Deno.test("toToolResult() renders a short text and the same fields as structured content", () => {
  const result = toToolResult({ ...base, stdout: "42\n" });
  assert.equal(result.isError, false);
  assert.equal(
    (result.content[0] as { text: string }).text,
    "status: ok (exit code 0, 12 ms)\n--- stdout ---\n42",
  );
  assert.deepEqual(result.structuredContent, { ...base, stdout: "42\n" });
});

/** A result as the JavaScript runner or the Python session builds it, with the first line it must render as. */
interface Row {
  tool: "javascript" | "python";
  what: string;
  result: RunResult & { result?: string; stateReset?: boolean };
  statusLine: string;
}

const py = { ...base, exitCode: null, stateReset: false };
const STATE_LOST = "The interpreter was restarted; the session's state is gone.";

// Every status of both tools, each the way src/javascript/runner.ts or src/python/python_result.ts makes it.
const ROWS: Row[] = [
  { tool: "javascript", what: "exits 0", result: base, statusLine: "status: ok (exit code 0, 12 ms)" },
  {
    tool: "javascript",
    what: "exits 1",
    result: { ...base, status: "error", exitCode: 1, message: "The code failed (exit code 1); see stderr." },
    statusLine: "status: error (exit code 1, 12 ms)",
  },
  {
    tool: "javascript",
    what: "is killed at the time limit",
    result: {
      ...base,
      status: "timeout",
      exitCode: null,
      timedOut: true,
      message: "Timed out after 100 ms and was killed.",
    },
    statusLine: "status: timeout (12 ms)",
  },
  {
    tool: "javascript",
    what: "is killed when cancelled",
    result: {
      ...base,
      status: "cancelled",
      exitCode: null,
      cancelled: true,
      message: "Cancelled by the client; the run was killed.",
    },
    statusLine: "status: cancelled (12 ms)",
  },
  {
    tool: "javascript",
    what: "is cancelled before it started",
    result: emptyResult("cancelled", "Cancelled by the client before the run started."),
    statusLine: "status: cancelled (0 ms)",
  },
  {
    tool: "javascript",
    what: "is killed at the memory limit",
    result: {
      ...base,
      status: "crashed",
      exitCode: null,
      memoryExceeded: true,
      message: "Killed for exceeding the memory limit (64 MiB).",
    },
    statusLine: "status: crashed (memory limit exceeded, 12 ms)",
  },
  {
    tool: "javascript",
    what: "is killed by a signal",
    result: {
      ...base,
      status: "crashed",
      exitCode: null,
      message: "The run's process was killed by SIGSEGV.",
    },
    statusLine: "status: crashed (12 ms)",
  },
  {
    tool: "javascript",
    what: "could not be prepared",
    result: emptyResult("crashed", "The server could not prepare the run: no space left on device."),
    statusLine: "status: crashed (0 ms)",
  },
  {
    tool: "python",
    what: "returns a value",
    result: { ...py, result: "45" },
    statusLine: "status: ok (12 ms)",
  },
  {
    tool: "python",
    what: "runs on a new interpreter after the last one was lost",
    result: { ...py, result: "1", stateReset: true },
    statusLine: "status: ok (Python state reset, 12 ms)",
  },
  {
    tool: "python",
    what: "prints more than the output limit",
    result: { ...py, stdout: "xxx\n[… output truncated]", truncated: true },
    statusLine: "status: ok (output truncated, 12 ms)",
  },
  {
    tool: "python",
    what: "raises",
    result: {
      ...py,
      status: "error",
      stderr: "ZeroDivisionError: division by zero",
      message: "Python raised ZeroDivisionError: division by zero; the traceback is in stderr.",
    },
    statusLine: "status: error (12 ms)",
  },
  {
    tool: "python",
    what: "cannot install a package",
    result: { ...py, status: "error", message: "Could not install what the code needs, so it did not run." },
    statusLine: "status: error (12 ms)",
  },
  {
    tool: "python",
    what: "is interrupted at the time limit",
    result: {
      ...py,
      status: "timeout",
      timedOut: true,
      message: "Timed out after 100 ms and was interrupted with KeyboardInterrupt.",
    },
    statusLine: "status: timeout (12 ms)",
  },
  {
    tool: "python",
    what: "is killed at the time limit",
    result: {
      ...emptyResult(
        "timeout",
        `Timed out after 100 ms and did not stop when interrupted, so it was killed. ${STATE_LOST}`,
      ),
      stateReset: true,
    },
    statusLine: "status: timeout (Python state reset, 0 ms)",
  },
  {
    tool: "python",
    what: "is interrupted when cancelled",
    result: {
      ...py,
      status: "cancelled",
      cancelled: true,
      message: "Cancelled by the client; Python was interrupted. The session's state is kept.",
    },
    statusLine: "status: cancelled (12 ms)",
  },
  {
    tool: "python",
    what: "is cancelled by killing the interpreter",
    result: { ...emptyResult("cancelled", `Cancelled by the client. ${STATE_LOST}`), stateReset: true },
    statusLine: "status: cancelled (Python state reset, 0 ms)",
  },
  {
    tool: "python",
    what: "is cancelled before it started",
    result: {
      ...emptyResult("cancelled", "Cancelled by the client before the run started."),
      stateReset: false,
    },
    statusLine: "status: cancelled (0 ms)",
  },
  {
    tool: "python",
    what: "is killed at the memory limit",
    result: {
      ...emptyResult("crashed", `Killed for exceeding the memory limit (600 MiB). ${STATE_LOST}`),
      memoryExceeded: true,
      stateReset: true,
    },
    statusLine: "status: crashed (memory limit exceeded, Python state reset, 0 ms)",
  },
  {
    tool: "python",
    what: "loses its interpreter, which exits 1",
    result: {
      ...emptyResult("crashed", `The Python process ended unexpectedly (exit code 1). ${STATE_LOST}`),
      exitCode: 1,
      stateReset: true,
    },
    statusLine: "status: crashed (exit code 1, Python state reset, 0 ms)",
  },
  {
    tool: "python",
    what: "could not start Python",
    result: { ...emptyResult("crashed", "Python could not start: no snapshot."), stateReset: true },
    statusLine: "status: crashed (Python state reset, 0 ms)",
  },
];

Deno.test("renderText() agrees with the structured result for every status of both tools", async (t) => {
  for (const status of ["ok", "error", "timeout", "cancelled", "crashed"] as const) {
    for (const tool of ["javascript", "python"] as const) {
      assert(
        ROWS.some((row) => row.tool === tool && row.result.status === status),
        `no row: ${tool} ${status}`,
      );
    }
  }
  for (const { tool, what, result, statusLine } of ROWS) {
    await t.step(`${tool}: a run that ${what}`, () => {
      const text = renderText(result);
      const lines = text.split("\n");
      assert.equal(lines[0], statusLine);
      if (result.message) assert.equal(lines[1], result.message);
      // Only the tool that produced the result knows whether something was killed; the rendering adds no claim.
      assert.equal(/killed/i.test(text), /killed/i.test(result.message ?? ""), text);
      assert.equal(/exit code/.test(lines[0] ?? ""), result.exitCode !== null, text);
      const tooled = toToolResult(result);
      assert.equal(tooled.isError, result.status !== "ok");
      assert.deepEqual(tooled.content[0], { type: "text", text });
      assert.equal(tooled.structuredContent.status, result.status);
    });
  }
});

Deno.test("renderText() shows the value, then each non-empty stream, or says there was no output", () => {
  assert.equal(
    renderText({ ...py, result: "'a'", stdout: "1\n", stderr: "careful\n" }),
    "status: ok (12 ms)\n--- result ---\n'a'\n--- stdout ---\n1\n--- stderr ---\ncareful",
  );
  assert.equal(renderText(base), "status: ok (exit code 0, 12 ms)\n(no output)");
});

Deno.test("toToolResult() turns attachments into image, text and resource items, and lists them", () => {
  const result = toToolResult({
    ...base,
    attachments: [
      { mimeType: "image/png", data: "iVBORw0KGgo=" },
      { mimeType: "text/html", text: "<b>x</b>" },
      { mimeType: "image/svg+xml", text: "<svg/>", name: "a.svg" },
      { mimeType: "application/pdf", data: "JVBERi0=", name: "r.pdf" },
    ],
  });
  assert.deepEqual(result.content.slice(1), [
    { type: "image", data: "iVBORw0KGgo=", mimeType: "image/png" },
    { type: "text", text: "<b>x</b>" },
    { type: "resource", resource: { uri: "output:///a.svg", mimeType: "image/svg+xml", text: "<svg/>" } },
    { type: "resource", resource: { uri: "output:///r.pdf", mimeType: "application/pdf", blob: "JVBERi0=" } },
  ]);
  assert.equal((result.structuredContent.attachments as unknown[]).length, 4);
  assert.equal("data" in (result.structuredContent.attachments as object[])[0]!, false);
});

Deno.test("capAttachments() keeps what fits and names what it left out", () => {
  const big = { mimeType: "image/png", data: "A".repeat(8 * 1024 * 1024) };
  const { kept, note } = capAttachments([{ mimeType: "text/plain", text: "ok", name: "a.txt" }, big]);
  assert.equal(kept.length, 1);
  assert.match(note ?? "", /image\/png/);
  assert.equal(capAttachments(Array(25).fill({ mimeType: "text/plain", text: "x" })).kept.length, 20);
});

Deno.test("attachments report their decoded size, without base64 padding", () => {
  // A 1×1 PNG of 70 bytes: 96 base64 characters, two of them padding.
  const png =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==";
  assert.equal(atob(png).length, 70);
  const result = toToolResult({
    ...base,
    attachments: [
      { mimeType: "image/png", data: png },
      { mimeType: "application/octet-stream", data: "AAE=", name: "two.bin" },
      { mimeType: "application/octet-stream", data: "AAEC", name: "three.bin" },
      { mimeType: "text/plain", text: "é", name: "accent.txt" },
    ],
  });
  assert.deepEqual(
    (result.structuredContent.attachments as Array<{ bytes: number }>).map((a) => a.bytes),
    [70, 2, 3, 2],
  );
  const { note } = capAttachments([{
    mimeType: "image/png",
    data: "A".repeat(8 * 1024 * 1024 - 4) + "AA==",
  }]);
  assert.match(note ?? "", new RegExp(`image/png \\(${8 * 1024 * 1024 * 3 / 4 - 2} bytes\\)`));
});
