import assert from "node:assert/strict";
import { capAttachments, type RunResult, toToolResult } from "../../src/result.ts";

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

Deno.test("toToolResult() marks every non-ok status as an error and shows the message", () => {
  for (const status of ["error", "timeout", "cancelled", "crashed"] as const) {
    const result = toToolResult({ ...base, status, exitCode: null, message: "what happened" });
    assert.equal(result.isError, true);
    assert.match(
      (result.content[0] as { text: string }).text ?? "",
      new RegExp(`status: ${status} \\(killed, 12 ms\\)\\nwhat happened`),
    );
  }
  assert.match((toToolResult(base).content[0] as { text: string }).text, /\(no output\)/);
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
