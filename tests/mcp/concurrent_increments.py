"""8 MCP clients at once (the official Python SDK, Streamable HTTP), each signs on and adds
one to a shared counter 200 times with compare-and-set (store_data's expected_version),
retrying on conflict. Prints the final value and the number of versions in its history.

Usage: concurrent_increments.py URL TOKEN
"""

import asyncio
import contextlib
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

CLIENTS, INCREMENTS = 8, 200


@contextlib.asynccontextmanager
async def signed_on(url, token):
    """A session over Streamable HTTP, signed on; yields it and its session_id."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                me = (await session.call_tool("sign_on", {})).structured_content["session_id"]
                yield session, me


async def client(url, token, scope):
    async with signed_on(url, token) as (session, me):
        conflicts = 0
        for _ in range(INCREMENTS):
            while True:
                now = (await session.call_tool(
                    "retrieve_data", {"scope": scope, "key": "counter", "session_id": me})).structured_content
                version, value = (now["version"], now["value"]) if now["found"] else (0, 0)
                stored = (await session.call_tool("store_data", {
                    "scope": scope, "key": "counter", "value": value + 1,
                    "expected_version": version, "session_id": me})).structured_content
                if stored["stored"]:
                    break
                conflicts += 1
        await session.call_tool("sign_off", {"session_id": me})
        return me, conflicts


async def main(url, token):
    scope = "shared"
    results = await asyncio.gather(*(client(url, token, scope) for _ in range(CLIENTS)))
    async with signed_on(url, token) as (session, me):
        final = (await session.call_tool(
            "retrieve_data", {"scope": scope, "key": "counter", "session_id": me})).structured_content
        history = (await session.call_tool(
            "key_history", {"scope": scope, "key": "counter", "session_id": me})).structured_content
    writers = sorted({version["written_by"].split("@")[0] for version in history["versions"]})
    print(json.dumps({"final": final["value"], "versions": len(history["versions"]),
                      "instances": sorted(me for me, _ in results), "writers": writers,
                      "conflicts": sum(conflicts for _, conflicts in results)}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
