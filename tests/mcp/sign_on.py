"""Signs on to cclog's MCP coordinator through `cclog mcp` with the official Python MCP SDK
and leaves without signing off, as a session that ends abruptly does.

Usage: sign_on.py CCLOG_BINARY DATA_DIR   (run in the project directory)

Prints one JSON object: the sign_on result.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(cclog, data):
    params = StdioServerParameters(command=cclog, args=["--data", data, "mcp"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("sign_on", {})
            assert not result.is_error, f"sign_on failed: {result.content}"
            print(json.dumps(result.structured_content))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
