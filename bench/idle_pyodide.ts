/**
 * Floor for the bench only: the memory of one plain idle Pyodide process, as a user would run it (plain
 * `loadPyodide()`, no snapshot, no flags). Prints its own RSS, PSS and private memory in MiB as JSON.
 */
import { loadPyodide } from "pyodide";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pyodide = await loadPyodide({ stdout: () => {}, stderr: () => {} });
pyodide.runPython("print(1)");
await sleep(1500);
// Only with `--v8-flags=--expose-gc`, as the server's hosts have; without it V8 collects when it likes.
(globalThis as { gc?: () => void }).gc?.();
await sleep(1500);
const rollup = Deno.readTextFileSync("/proc/self/smaps_rollup");
const mib = (key: string) => Number(rollup.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0) / 1024;
console.log(JSON.stringify({
  rss: mib("Rss"),
  pss: mib("Pss"),
  private: mib("Private_Clean") + mib("Private_Dirty"),
}));
