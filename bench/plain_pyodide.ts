/** Baseline for the bench only: a fresh process that boots Pyodide the plain way and runs print(1). */
import { loadPyodide } from "pyodide";

const pyodide = await loadPyodide({ stdout: () => {}, stderr: () => {} });
pyodide.runPython("print(1)");
