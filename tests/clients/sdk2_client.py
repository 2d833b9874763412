"""The official MCP Python SDK 2.x (`mcp` 2.x) and its high-level `Client`."""

from importlib.metadata import version
from typing import Any

import anyio
from mcp import Client, StdioServerParameters, types

import _common


async def main() -> None:
    config = _common.config()
    logs: list[dict[str, Any]] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append({"level": params.level, "data": params.data})

    server: StdioServerParameters | str = (
        StdioServerParameters(command=config["command"], args=config["args"], env=config["env"])
        if config["transport"] == "stdio"
        else config["url"]
    )
    async with Client(server, logging_callback=on_log) as client:
        tools = await client.list_tools()
        calls = {}
        for name, (tool, arguments) in _common.CALLS.items():
            calls[name] = _common.summarize(await client.call_tool(tool, arguments))
        # 2.x sends notifications/cancelled itself when the caller abandons a request.
        tool, arguments = _common.CANCELLED_CALL
        with anyio.move_on_after(_common.CANCEL_AFTER_SECONDS) as scope:
            await client.call_tool(tool, arguments)
        tool, arguments = _common.AFTER_CANCEL
        after_cancel = _common.summarize(await client.call_tool(tool, arguments))
        protocol = client.protocol_version
    # Printed only after the client has shut down: an error on exit means no report.
    _common.report(
        {
            "client": f"mcp {version('mcp')}",
            "protocolVersion": protocol,
            "tools": [t.name for t in tools.tools],
            "calls": calls,
            "cancelTookEffect": scope.cancelled_caught,
            "afterCancel": after_cancel,
            "logs": logs,
        }
    )


anyio.run(main)
