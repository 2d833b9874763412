"""fastmcp's `Client` (fastmcp 4, on the MCP Python SDK 2.x)."""

from importlib.metadata import version
from typing import Any

import anyio
from fastmcp import Client
from fastmcp.client.logging import LogMessage
from fastmcp.client.transports import StdioTransport

import _common


def summarize(result: Any) -> dict[str, Any]:
    """fastmcp's own CallToolResult (a dataclass around the SDK's content blocks) as the report shows it."""
    return _common.summarize_dict(
        {
            "isError": result.is_error,
            "structuredContent": result.structured_content,
            "content": [item.model_dump(by_alias=True, mode="json", exclude_none=True) for item in result.content],
        }
    )


async def main() -> None:
    config = _common.config()
    logs: list[dict[str, Any]] = []

    async def on_log(message: LogMessage) -> None:
        logs.append({"level": message.level, "data": message.data})

    transport: StdioTransport | str = (
        # keep_alive=False: the server is stopped when the client's context ends, not at interpreter exit.
        StdioTransport(command=config["command"], args=config["args"], env=config["env"], keep_alive=False)
        if config["transport"] == "stdio"
        else config["url"]
    )
    async with Client(transport, log_handler=on_log) as client:
        tools = await client.list_tools()
        calls = {}
        for name, (tool, arguments) in _common.CALLS.items():
            calls[name] = summarize(await client.call_tool(tool, arguments, raise_on_error=False))
        tool, arguments = _common.CANCELLED_CALL
        with anyio.move_on_after(_common.CANCEL_AFTER_SECONDS) as scope:
            await client.call_tool(tool, arguments)
        tool, arguments = _common.AFTER_CANCEL
        after_cancel = summarize(await client.call_tool(tool, arguments))
    # Printed only after the client has shut down: an error on exit means no report.
    _common.report(
        {
            "client": f"fastmcp {version('fastmcp')}",
            "tools": [t.name for t in tools],
            "calls": calls,
            "cancelTookEffect": scope.cancelled_caught,
            "afterCancel": after_cancel,
            "logs": logs,
        }
    )


anyio.run(main)
