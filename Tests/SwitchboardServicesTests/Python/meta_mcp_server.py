#!/usr/bin/env python3
"""An MCP server (the official Python SDK) whose tool answers with the `_meta` of the call it got.

  meta_mcp_server.py            serve over stdio
  meta_mcp_server.py http PORT  serve streamable HTTP on 127.0.0.1:PORT/mcp, answering POSTs with JSON
"""
import sys
import time

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("switchboard-test-tools")


@server.tool()
def record(note: str, ctx: Context) -> dict:
    """Returns the note and the request's _meta."""
    meta = ctx.request_context.meta
    if meta is not None and not isinstance(meta, dict):
        meta = meta.model_dump(exclude_none=True)
    return {"note": note, "meta": meta or {}}


@server.tool()
def slow(seconds: float) -> str:
    """Sleeps, then answers."""
    time.sleep(seconds)
    return "done"


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), json_response=True,
                   stateless_http=True)
    else:
        server.run()
