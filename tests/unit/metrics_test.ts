import assert from "node:assert/strict";
import { directorySize, Metrics } from "../../src/metrics.ts";

Deno.test("Metrics.render() writes the Prometheus text format with every known run label set at zero", async () => {
  const metrics = new Metrics();
  const text = await metrics.render();
  assert.match(text, /^# HELP code_runner_runs_total /m);
  assert.match(text, /^# TYPE code_runner_runs_total counter$/m);
  assert.match(text, /^code_runner_runs_total\{tool="run_python",status="ok"\} 0$/m);
  assert.match(text, /^code_runner_runs_total\{tool="run_javascript",status="timeout"\} 0$/m);
  assert.match(text, /^# TYPE code_runner_run_duration_seconds histogram$/m);
  assert.ok(text.endsWith("\n"));
});

Deno.test("Metrics.recordRun() counts runs and fills the duration histogram cumulatively", async () => {
  const metrics = new Metrics();
  metrics.recordRun("run_python", "ok", 20);
  metrics.recordRun("run_python", "ok", 700);
  metrics.recordRun("run_python", "timeout", 30_000);
  const text = await metrics.render();
  assert.match(text, /^code_runner_runs_total\{tool="run_python",status="ok"\} 2$/m);
  assert.match(text, /^code_runner_runs_total\{tool="run_python",status="timeout"\} 1$/m);
  assert.match(text, /^code_runner_run_duration_seconds_bucket\{tool="run_python",le="0.025"\} 1$/m);
  assert.match(text, /^code_runner_run_duration_seconds_bucket\{tool="run_python",le="1"\} 2$/m);
  assert.match(text, /^code_runner_run_duration_seconds_bucket\{tool="run_python",le="30"\} 3$/m);
  assert.match(text, /^code_runner_run_duration_seconds_bucket\{tool="run_python",le="\+Inf"\} 3$/m);
  assert.match(text, /^code_runner_run_duration_seconds_count\{tool="run_python"\} 3$/m);
  assert.match(text, /^code_runner_run_duration_seconds_sum\{tool="run_python"\} 30\.72$/m);
  assert.equal(metrics.value("code_runner_runs_total", { tool: "run_python", status: "ok" }), 2);
});

Deno.test("Metrics.recordRun() folds names a client chose into `other`, so labels stay bounded", async () => {
  const metrics = new Metrics();
  for (let i = 0; i < 100; i++) metrics.recordRun(`tool_${i}"\n`, `status_${i}`, 1);
  const text = await metrics.render();
  assert.match(text, /^code_runner_runs_total\{tool="other",status="other"\} 100$/m);
  assert.doesNotMatch(text, /tool_1/);
});

Deno.test("Metrics gauges are read at every scrape; one that throws is left out", async () => {
  const metrics = new Metrics();
  let open = 1;
  metrics.gauge("code_runner_http_sessions_open", "Sessions open.", () => open);
  metrics.gauge("broken", "Throws.", () => {
    throw new Error("no /proc");
  });
  metrics.gauge("by_kind", 'Labelled "values".', () => [{ labels: { kind: 'a"b\\c' }, value: 2 }]);
  assert.match(await metrics.render(), /^code_runner_http_sessions_open 1$/m);
  open = 3;
  const text = await metrics.render();
  assert.match(text, /^code_runner_http_sessions_open 3$/m);
  assert.doesNotMatch(text, /broken/);
  assert.match(text, /^by_kind\{kind="a\\"b\\\\c"\} 2$/m);
});

Deno.test("directorySize() adds up the files below a directory, and is 0 for a missing one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a/b`, { recursive: true });
    await Deno.writeFile(`${dir}/x`, new Uint8Array(10));
    await Deno.writeFile(`${dir}/a/b/y`, new Uint8Array(32));
    assert.equal(await directorySize(dir), 42);
    assert.equal(await directorySize(`${dir}/missing`), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
