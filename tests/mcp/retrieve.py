"""Signs on to cclog's MCP coordinator through `cclog mcp` with the official Python MCP SDK,
reads one key with retrieve_data, and signs off.

Usage: retrieve.py CCLOG_BINARY DATA_DIR SCOPE KEY   (run in the project directory)

Prints one JSON object: the retrieve_data result.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(cclog, data, scope, key):
    params = StdioServerParameters(command=cclog, args=["--data", data, "mcp"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            signed_on = await session.call_tool("sign_on", {})
            assert not signed_on.is_error, f"sign_on failed: {signed_on.content}"
            result = await session.call_tool("retrieve_data", {"scope": scope, "key": key})
            assert not result.is_error, f"retrieve_data failed: {result.content}"
            await session.call_tool("sign_off", {})
            print(json.dumps(result.structured_content))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
