"""The official MCP Python SDK 1.x (`mcp` 1.x), as langchain-mcp-adapters and most Python agents use it."""

from importlib.metadata import version
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

import _common


async def exercise(session: ClientSession) -> dict[str, Any]:
    await session.initialize()
    tools = await session.list_tools()
    calls = {}
    for name, (tool, arguments) in _common.CALLS.items():
        calls[name] = _common.summarize(await session.call_tool(tool, arguments))

    # 1.x does not tell the server when a caller gives up on a request: a user who cancels sends
    # notifications/cancelled with the request's id themselves (the SDK keeps the next id in _request_id).
    request_id = session._request_id  # noqa: SLF001
    tool, arguments = _common.CANCELLED_CALL
    async with anyio.create_task_group() as group:
        group.start_soon(session.call_tool, tool, arguments)
        await anyio.sleep(_common.CANCEL_AFTER_SECONDS)
        await session.send_notification(
            types.ClientNotification(
                types.CancelledNotification(
                    params=types.CancelledNotificationParams(requestId=request_id, reason="test cancel")
                )
            )
        )
        group.cancel_scope.cancel()
    tool, arguments = _common.AFTER_CANCEL
    after_cancel = _common.summarize(await session.call_tool(tool, arguments))
    return {"tools": [t.name for t in tools.tools], "calls": calls, "afterCancel": after_cancel}


async def main() -> None:
    config = _common.config()
    logs: list[dict[str, Any]] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append({"level": params.level, "data": params.data})

    if config["transport"] == "stdio":
        server = StdioServerParameters(command=config["command"], args=config["args"], env=config["env"])
        async with stdio_client(server) as (read, write):
            async with ClientSession(read, write, logging_callback=on_log) as session:
                values = await exercise(session)
    else:
        async with streamable_http_client(config["url"]) as (read, write, _):
            async with ClientSession(read, write, logging_callback=on_log) as session:
                values = await exercise(session)
    # Printed only after the client has shut down: an error on exit means no report.
    _common.report({"client": f"mcp {version('mcp')}", **values, "logs": logs})


anyio.run(main)
