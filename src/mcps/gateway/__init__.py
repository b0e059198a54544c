"""``mcps gateway``: a security layer in front of existing MCP servers (stdio commands and Streamable HTTP URLs)."""
