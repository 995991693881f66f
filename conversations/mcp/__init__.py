"""MCP servers on behalf of a user: their credentials, sealed at rest and opened only to build a
request (the wire form lives with the request, in `upstream.mcp_wire`)."""
