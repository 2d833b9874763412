/**
 * Python source of the helper the host loads into Pyodide: it plans installs (guessing PyPI names for
 * imports), sets micropip up (from the package indexes when Pyodide's distribution cannot be reached),
 * installs with it, runs a call in the session's namespace and reports its value or a traceback of the user's
 * code only.
 *
 * @module
 */

/** The file name user code runs as, shown in tracebacks. */
export const USER_FILENAME = "<code>";

/**
 * The helper; evaluating it registers and returns a namespace object with `plan`, `micropip_ready`,
 * `configure_micropip`, `micropip_from_index`, `pip_install`, `missing_imports` and `run`.
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


# Import names that are not their PyPI project's name, for imports Pyodide's lock file does not map (its
# "imports" are asked first). Chosen from pipreqs' mapping (github.com/bndr/pipreqs, pipreqs/mapping) for
# projects with a pure-Python wheel or a Pyodide build; entries Pyodide maps too (yaml, PIL, ...) serve a
# mirror whose lock file lacks them. A wrong guess only costs a failed install: add entries freely.
PYPI_NAMES = {
    "yaml": "PyYAML",
    "sklearn": "scikit-learn",
    "PIL": "Pillow",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "cv2": "opencv-python",
    "slugify": "python-slugify",
    "dotenv": "python-dotenv",
    "jwt": "PyJWT",
    "attr": "attrs",
    "Crypto": "pycryptodome",
    "Cryptodome": "pycryptodomex",
    "OpenSSL": "pyOpenSSL",
    "nacl": "PyNaCl",
    "jose": "python-jose",
    "multipart": "python-multipart",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "fitz": "PyMuPDF",
    "pdfminer": "pdfminer.six",
    "odf": "odfpy",
    "dns": "dnspython",
    "serial": "pyserial",
    "usb": "pyusb",
    "socks": "PySocks",
    "websocket": "websocket-client",
    "git": "GitPython",
    "github": "PyGithub",
    "gitlab": "python-gitlab",
    "skimage": "scikit-image",
    "Bio": "biopython",
    "umap": "umap-learn",
    "community": "python-louvain",
    "pkg_resources": "setuptools",
    "rest_framework": "djangorestframework",
    "googleapiclient": "google-api-python-client",
    "telegram": "python-telegram-bot",
    "discord": "discord.py",
    "kafka": "kafka-python",
    "memcache": "python-memcached",
    "barcode": "python-barcode",
    "whois": "python-whois",
    "pylab": "matplotlib",
    "mpl_toolkits": "matplotlib",
}


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
    """What a call needs: distribution packages for its imports ([module, package] pairs), declared
    requirements (packages and PEP 723), and other missing imports with the PyPI project guessed for each
    ([module, project] pairs)."""
    declared = [str(p) for p in packages] + script_dependencies(code)
    distribution, guessed = [], []
    for name in _missing_imports(code):
        if name in import_map:
            distribution.append([name, import_map[name]])
        elif name not in sys.stdlib_module_names:
            # A standard-library module Pyodide lacks is not on PyPI under its name.
            guessed.append([name, PYPI_NAMES.get(name, name)])
    return {"distribution": distribution, "declared": declared, "guessed": guessed}


# micropip as this interpreter uses it: the configured indexes, whether to ask them before Pyodide's
# distribution, micropip's own install function, and the host's callback that reports the code's installs.
_micropip = {"index_urls": [], "index_first": False, "install": None, "installing": None}


def micropip_ready():
    """Whether micropip is imported and configured (once per interpreter)."""
    return _micropip["install"] is not None


def _index_urls(index_first):
    urls = list(_micropip["index_urls"])
    if not index_first:
        return urls
    # micropip searches Pyodide's lock file before an index only when the index is its default (PyPI's simple
    # API); the same URLs with a placeholder make it ask the index first.
    return [u if "{package_name}" in u else u.rstrip("/") + "/{package_name}/" for u in urls]


def configure_micropip(index_urls, index_first, installing):
    """Points micropip at the configured indexes (for the code's own "import micropip" too) and makes the
    code's installs report progress. index_first when Pyodide's distribution cannot be reached."""
    import functools

    import micropip

    _micropip["index_urls"] = [str(u) for u in index_urls]
    _micropip["index_first"] = _micropip["index_first"] or bool(index_first)
    micropip.set_index_urls(_index_urls(_micropip["index_first"]))
    if _micropip["install"] is not None:
        return
    original = micropip.install
    _micropip["install"] = original
    _micropip["installing"] = installing

    @functools.wraps(original)
    async def install(requirements, *args, **kwargs):
        names = [requirements] if isinstance(requirements, str) else [str(r) for r in requirements]
        _micropip["installing"](True, "Installing " + ", ".join(names))
        try:
            return await original(requirements, *args, **kwargs)
        finally:
            _micropip["installing"](False, "")

    micropip.install = install


def _requirement_name(requirement):
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    # A URL, or a requirement with a marker (micropip skips it when the marker is false), is not checked.
    return match.group(1) if match and "://" not in requirement and ";" not in requirement else None


async def pip_install(requirements, index_first):
    """Installs with micropip; returns why it failed, or "" when every requirement is installed."""
    from importlib.metadata import PackageNotFoundError, version

    requirements = [str(r) for r in requirements]
    try:
        await _micropip["install"](
            requirements, keep_going=True, index_urls=_index_urls(index_first or _micropip["index_first"])
        )
    except Exception as error:
        return " ".join(str(error).split())
    importlib.invalidate_caches()
    # micropip does not notice when Pyodide's loader fails to load a package of the distribution.
    missing = []
    for requirement in requirements:
        name = _requirement_name(requirement)
        if name is None:
            continue
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(requirement)
    return f"{', '.join(missing)} did not load" if missing else ""


def _micropip_wheels(text, content_type, page_url):
    """micropip's wheels an index page lists, by version."""
    import html
    from urllib.parse import urljoin

    files = []
    if "json" in content_type:
        for entry in json.loads(text).get("files", []):
            if not entry.get("yanked"):
                files.append((entry.get("filename", ""), entry.get("url", "")))
    else:
        for href, name in re.findall(r"<a\s[^>]*href=[\"']([^\"']+)[\"'][^>]*>\s*([^<\s]+)\s*</a>", text):
            files.append((name, html.unescape(href)))
    wheels = {}
    for name, href in files:
        match = re.fullmatch(r"micropip-([0-9][0-9.]*)-py3-none-any\.whl", name)
        if match and href:
            wheels[match.group(1)] = urljoin(page_url, href.split("#")[0])
    return wheels


def _version_key(text):
    return tuple(int(part) for part in text.split(".") if part.isdigit())


async def micropip_from_index(index_urls, preferred_version):
    """Installs micropip from the package indexes, for when Pyodide's distribution cannot be reached: it is a
    pure-Python wheel without dependencies. The version Pyodide's lock file names is preferred. (The server
    fetches the wheel only as the index page lists it, and checks it against the sha256 listed there.)"""
    import io
    import site
    import zipfile
    from pathlib import Path

    from pyodide.http import pyfetch

    errors = []
    for index in index_urls:
        page = str(index).rstrip("/") + "/micropip/"
        try:
            response = await pyfetch(page, headers={"accept": "application/vnd.pypi.simple.v1+json"})
            if not response.ok:
                raise OSError(f"HTTP {response.status}")
            wheels = _micropip_wheels(await response.string(), response.headers.get("content-type", ""), page)
            if not wheels:
                raise LookupError("the page lists no micropip wheel")
            url = wheels.get(preferred_version) or wheels[max(wheels, key=_version_key)]
            fetched = await pyfetch(url)
            if not fetched.ok:
                raise OSError(f"{url}: HTTP {fetched.status}")
            target = site.getsitepackages()[0]
            with zipfile.ZipFile(io.BytesIO(await fetched.bytes())) as wheel:
                wheel.extractall(target)
                dist_info = next(
                    n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info")
                )
            # micropip.list() shows what has a PYODIDE_SOURCE.
            Path(target, dist_info, "PYODIDE_SOURCE").write_text(url)
            Path(target, dist_info, "INSTALLER").write_text("micropip")
            importlib.invalidate_caches()
            return ""
        except Exception as error:
            errors.append(f"{page}: {' '.join(str(error).split()) or type(error).__name__}")
    return "; ".join(errors) or "no package index is configured"


def missing_imports(code):
    """The code's imports that are still missing after installing."""
    importlib.invalidate_caches()
    return _missing_imports(code)


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
    plan=plan,
    micropip_ready=micropip_ready,
    configure_micropip=configure_micropip,
    micropip_from_index=micropip_from_index,
    pip_install=pip_install,
    missing_imports=missing_imports,
    run=run,
)
sys.modules["_code_runner_helper"]
`;
