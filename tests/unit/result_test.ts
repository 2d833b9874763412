import assert from "node:assert/strict";
import { type RunResult, toToolResult } from "../../src/result.ts";

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
  assert.equal(result.content[0]?.text, "status: ok (exit code 0, 12 ms)\n--- stdout ---\n42");
  assert.deepEqual(result.structuredContent, { ...base, stdout: "42\n" });
});

Deno.test("toToolResult() marks every non-ok status as an error and shows the message", () => {
  for (const status of ["error", "timeout", "cancelled", "crashed"] as const) {
    const result = toToolResult({ ...base, status, exitCode: null, message: "what happened" });
    assert.equal(result.isError, true);
    assert.match(
      result.content[0]?.text ?? "",
      new RegExp(`status: ${status} \\(killed, 12 ms\\)\\nwhat happened`),
    );
  }
  assert.match(toToolResult(base).content[0]?.text ?? "", /\(no output\)/);
});
