/**
 * Python source of the helper the host loads into Pyodide: it plans installs, installs with micropip, runs
 * a call in the session's namespace and reports its value or a traceback of the user's code only.
 *
 * @module
 */

/** The file name user code runs as, shown in tracebacks. */
export const USER_FILENAME = "<code>";

/**
 * The helper; evaluating it registers and returns a namespace object with `plan`, `pip_install`,
 * `check_imports` and `run`.
 */
export const HELPER_SOURCE = String.raw`
import importlib
import importlib.util
import json
import re
import sys
import traceback
import types

from ast import PyCF_ALLOW_TOP_LEVEL_AWAIT
from inspect import CO_COROUTINE

from pyodide.code import CodeRunner, find_imports

USER_FILE = "${USER_FILENAME}"
# Figures render to PNG, never to a window.
import os as _os

_os.environ.setdefault("MPLBACKEND", "Agg")
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
_SCRIPT_BLOCK = re.compile(r"(?m)^# /// script\s*$\n((?:^#(?:| .*)$\n)+)^# ///\s*$")


def script_dependencies(code):
    """Dependencies declared in PEP 723 inline script metadata."""
    match = _SCRIPT_BLOCK.search(code + "\n")
    if not match:
        return []
    import tomllib

    toml = "\n".join(line[2:] if line.startswith("# ") else line[1:] for line in match.group(1).splitlines())
    deps = tomllib.loads(toml).get("dependencies", [])
    return [str(dep) for dep in deps]


def _missing_imports(code):
    try:
        names = find_imports(code)
    except SyntaxError:
        return []
    missing = []
    for name in names:
        top = name.split(".")[0]
        if top in sys.modules or top in missing:
            continue
        try:
            if importlib.util.find_spec(top) is not None:
                continue
        except (ImportError, ValueError):
            pass
        missing.append(top)
    return missing


def plan(code, packages, import_map):
    """What a call needs: [distribution packages for its imports, declared requirements (packages and
    PEP 723), other missing imports by name]."""
    declared = [str(p) for p in packages] + script_dependencies(code)
    distribution, guessed = [], []
    for name in _missing_imports(code):
        if name in import_map:
            if import_map[name] not in distribution:
                distribution.append(import_map[name])
        else:
            guessed.append(name)
    return [distribution, declared, guessed]


async def pip_install(requirements, index_urls):
    """Installs with micropip; returns an error text, or "" on success."""
    import micropip

    micropip.set_index_urls(list(index_urls))
    try:
        await micropip.install(list(requirements), keep_going=True)
    except Exception as error:
        return f"Could not install {', '.join(requirements)}: {error}"
    return ""


def check_imports(code):
    """Names the imports that are still missing after installing."""
    importlib.invalidate_caches()
    missing = _missing_imports(code)
    if not missing:
        return ""
    return "No installed package provides " + ", ".join(repr(m) for m in missing) + "."


def _user_traceback(error):
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != USER_FILE:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def _report_error(error):
    if isinstance(error, KeyboardInterrupt):
        return {"outcome": "interrupted", "error": "KeyboardInterrupt"}
    if isinstance(error, SystemExit):
        if error.code in (None, 0):
            return {"outcome": "ok"}
        return {"outcome": "error", "error": f"SystemExit: {error.code}"}
    return {"outcome": "error", "error": _user_traceback(error)}


_IMAGE_REPRS = (("_repr_png_", "image/png"), ("_repr_jpeg_", "image/jpeg"), ("_repr_svg_", "image/svg+xml"))
_TEXT_REPRS = (("_repr_markdown_", "text/markdown"), ("_repr_html_", "text/html"))


def _call_repr(value, method):
    fn = getattr(type(value), method, None)
    if fn is None:
        return None
    try:
        data = getattr(value, method)()
    except BaseException:
        return None
    return data[0] if isinstance(data, tuple) else data


def _displays(value):
    """Rich output of a call, IPython style: the last value's richest image and text reprs, then every
    open matplotlib figure as PNG."""
    import base64
    import io

    displays = []
    if value is not None:
        for method, mime in _IMAGE_REPRS:
            data = _call_repr(value, method)
            if data is None:
                continue
            if mime == "image/svg+xml":
                displays.append({"mimeType": mime, "text": str(data)})
            elif isinstance(data, (bytes, bytearray)):
                displays.append({"mimeType": mime, "data": base64.b64encode(data).decode()})
            else:
                displays.append({"mimeType": mime, "data": str(data)})
            break
        for method, mime in _TEXT_REPRS:
            data = _call_repr(value, method)
            if data is not None:
                displays.append({"mimeType": mime, "text": str(data)})
                break
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        for number in pyplot.get_fignums():
            buffer = io.BytesIO()
            pyplot.figure(number).savefig(buffer, format="png", bbox_inches="tight")
            displays.append({"mimeType": "image/png", "data": base64.b64encode(buffer.getvalue()).decode()})
        pyplot.close("all")
    return displays


def _report_value(value, limit):
    displays = _displays(value)
    if value is None:
        return {"outcome": "ok", "displays": displays} if displays else {"outcome": "ok"}
    try:
        text = repr(value)
    except BaseException as error:
        text = f"<repr failed: {type(error).__name__}: {error}>"
    report = {"outcome": "ok", "result": text[:limit]}
    if displays:
        report["displays"] = displays
    if isinstance(value, (dict, list, tuple, str, int, float, bool)):
        try:
            encoded = json.dumps(value, allow_nan=False)
            if len(encoded) <= limit:
                report["resultJson"] = encoded
        except (TypeError, ValueError, RecursionError):
            pass
    return report


def _report(value, limit):
    """The report of a finished call; a repr hook or a figure that fails to render is the code's error, reported
    like one, never the interpreter's."""
    try:
        return _report_value(value, limit)
    except BaseException as error:
        return _report_error(error)


async def _run_async(runner, limit):
    try:
        value = await runner.run_async(namespace)
    except BaseException as error:
        return _report_error(error)
    return _report(value, limit)


def run(code, limit):
    """Runs code in the session's namespace; the last expression's value is the result. Code without
    top-level await runs synchronously; other code returns a coroutine for the host to await."""
    try:
        runner = CodeRunner(code, filename=USER_FILE, flags=PyCF_ALLOW_TOP_LEVEL_AWAIT).compile()
    except BaseException as error:
        return _report_error(error)
    if runner.code.co_flags & CO_COROUTINE:
        return _run_async(runner, limit)
    try:
        value = runner.run(namespace)
    except BaseException as error:
        return _report_error(error)
    return _report(value, limit)


# Kept in sys.modules so a session restored from a memory snapshot finds it without running this again.
sys.modules["_code_runner_helper"] = types.SimpleNamespace(
    plan=plan, pip_install=pip_install, check_imports=check_imports, run=run
)
sys.modules["_code_runner_helper"]
`;
