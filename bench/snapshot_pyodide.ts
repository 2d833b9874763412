/**
 * Floor for the bench only: a fresh plain process (no server, no sandbox) that boots Pyodide from the memory
 * snapshot the server made (path in the first argument) and runs print(1). The server's host also checks the
 * snapshot's sha256 and restores it sparsely; this does neither, so it is the least a snapshot boot costs.
 */
import { loadPyodide } from "pyodide";

const path = Deno.args[0];
if (!path) throw new Error("usage: snapshot_pyodide.ts SNAPSHOT.bin");
const pyodide = await loadPyodide(
  {
    stdout: () => {},
    stderr: () => {},
    // Private option of the pinned Pyodide version, as the server's host uses it.
    _loadSnapshot: Deno.readFile(path),
  } as Parameters<typeof loadPyodide>[0],
);
pyodide.runPython("print(1)");
