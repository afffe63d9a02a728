"""`python -m cc_executor.mcp [options]`: the MCP server over stdio (see cc_executor.mcp)."""

from . import main

main()
