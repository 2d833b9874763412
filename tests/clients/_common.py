"""What every Python client script does to the server, and the report it prints for the Deno test.

A script is run as `python <script> '<json config>'`, the config being
`{"transport": "stdio", "command": ..., "args": [...], "env": {...}}` or `{"transport": "http", "url": ...}`.
It prints one JSON report on the last line of stdout and exits 0; anything the client raises, on the way or
on exit, makes it exit non-zero with a traceback on stderr.
"""

import base64
import json
import sys
from typing import Any

# A 1×1 PNG of 70 bytes (96 base64 characters, two of them padding).
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="

# name → (tool, arguments)
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "js_ok": ("run_javascript", {"code": "console.log(6 * 7)"}),
    "py_ok": ("run_python", {"code": "sum(range(10))"}),
    "js_error": ("run_javascript", {"code": 'throw new Error("boom")'}),
    "py_error": ("run_python", {"code": "1 / 0"}),
    "js_image": (
        "run_javascript",
        {
            "code": f'Deno.writeFileSync("output/x.png", Uint8Array.from(atob("{PNG_BASE64}"), (c) => c.charCodeAt(0)))',
        },
    ),
    "py_image": (
        "run_python",
        {
            "code": "import base64\n"
            "class Dot:\n"
            f"    def _repr_png_(self): return base64.b64decode('{PNG_BASE64}')\n"
            "Dot()",
        },
    ),
}

# Cancelled a moment after it starts; without the cancel it would run for a minute and set `finished`.
CANCELLED_CALL = (
    "run_python",
    {"code": "import time\nfor _ in range(600):\n    time.sleep(0.1)\nfinished = True", "timeout_ms": 120000},
)
# Asked next in the same session: calls run one at a time, so it answers only once the cancelled one stopped.
AFTER_CANCEL = ("run_python", {"code": "globals().get('finished', False)"})
# How long a script waits after starting the call it cancels.
CANCEL_AFTER_SECONDS = 1.5


def config() -> dict[str, Any]:
    return json.loads(sys.argv[1])


def summarize(result: Any) -> dict[str, Any]:
    """A CallToolResult (any SDK's pydantic model) as the report shows it."""
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return summarize_dict(dumped)


def summarize_dict(dumped: dict[str, Any]) -> dict[str, Any]:
    content = dumped.get("content", [])
    return {
        "isError": dumped.get("isError", False),
        "structured": dumped.get("structuredContent"),
        "text": "\n".join(item.get("text", "") for item in content if item.get("type") == "text"),
        "images": [
            {"mimeType": item["mimeType"], "bytes": len(base64.b64decode(item["data"]))}
            for item in content
            if item.get("type") == "image"
        ],
    }


def report(values: dict[str, Any]) -> None:
    print(json.dumps(values), flush=True)
