"""Resource notifications with the official Python MCP SDK: alice subscribes to bob's state
and to the context, bob writes, alice is told.

Usage: notifications.py CCLOG_BINARY DATA_DIR   (run in the project directory)
         over stdio through `cclog mcp`, handshake revision: resources/subscribe
       notifications.py --listen http URL TOKEN
       notifications.py --listen stdio CCLOG_BINARY DATA_DIR
         at 2026-07-28 (subscriptions/listen), over Streamable HTTP or stdio through `cclog mcp`

Prints one JSON object: the URIs alice was told about after each of bob's writes.
"""

import asyncio
import contextlib
import json
import sys
import time
import warnings

import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

# resources/subscribe is the handshake revisions' way (2026-07-28 listens instead).
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*resources/(un)?subscribe.*")


@contextlib.asynccontextmanager
async def signed_on(cclog, data, updates=None):
    async def on_message(message):
        if updates is not None and isinstance(message, types.ResourceUpdatedNotification):
            updates.put_nowait((message.params.uri, time.monotonic()))

    params = StdioServerParameters(command=cclog, args=["--data", data, "mcp"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()
            signed = await session.call_tool("sign_on", {})
            assert not signed.is_error, signed.content
            yield session, signed.structured_content["session_id"]


async def told(updates, quiet=1.0):
    """The URIs alice is told about until `quiet` seconds pass without one."""
    uris = []
    while True:
        try:
            uri, _ = await asyncio.wait_for(updates.get(), quiet)
            uris.append(uri)
        except asyncio.TimeoutError:
            return sorted(set(uris))


async def main(cclog, data):
    updates = asyncio.Queue()
    seen = {}
    async with signed_on(cclog, data, updates) as (alice, _), signed_on(cclog, data) as (bob, bob_id):
        capabilities = alice.initialize_result.capabilities
        assert capabilities.resources and capabilities.resources.subscribe, capabilities
        state = f"session://state/{bob_id}"
        await alice.subscribe_resource(state)
        await alice.subscribe_resource("session://context")

        async def bob_stores(scope, key, value):
            result = await bob.call_tool("store_data", {"scope": scope, "key": key, "value": value})
            assert not result.is_error, result.content
            return time.monotonic()

        written_at = await bob_stores(bob_id, "progress", "step 1")
        uri, heard_at = await asyncio.wait_for(updates.get(), 10)
        seen["first_ms"] = (heard_at - written_at) * 1000
        seen["own_scope"] = sorted({uri, *await told(updates)})
        # What alice reads after the notification is bob's new state.
        read = await alice.read_resource(state)
        seen["state_after"] = json.loads(read.contents[0].text)["values"]

        await bob_stores("shared", "fact", 1)
        seen["other_scope"] = await told(updates)

        await alice.unsubscribe_resource(state)
        await bob_stores(bob_id, "progress", "step 2")
        seen["after_unsubscribe"] = await told(updates)
    print(json.dumps(seen))


async def main_listen(transport, a, b):
    """The same over 2026-07-28: one listen stream for bob's state and the context."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.client.subscriptions import ResourceUpdated

    @contextlib.asynccontextmanager
    async def client():
        async with contextlib.AsyncExitStack() as stack:
            if transport == "http":
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(headers={"Authorization": f"Bearer {b}"}, timeout=60))
                server = streamable_http_client(a, http_client=http)
            else:
                server = StdioServerParameters(command=a, args=["--data", b, "mcp"])
            connected = await stack.enter_async_context(Client(server, mode="2026-07-28"))
            signed = await connected.call_tool("sign_on", {})
            assert not signed.is_error, signed.content
            yield connected, signed.structured_content["session_id"]

    seen = {}
    async with client() as (alice, _), client() as (bob, bob_id):
        state = f"session://state/{bob_id}"
        updates = asyncio.Queue()
        async with alice.listen(resource_subscriptions=[state, "session://context"]) as subscription:
            seen["honored"] = sorted(subscription.honored.resource_subscriptions or [])

            async def collect():
                async for event in subscription:
                    if isinstance(event, ResourceUpdated):
                        updates.put_nowait((event.uri, time.monotonic()))

            collector = asyncio.create_task(collect())
            stored = await bob.call_tool("store_data", {"scope": bob_id, "key": "progress", "value": "step 1",
                                                        "session_id": bob_id})
            assert not stored.is_error, stored.content
            written_at = time.monotonic()
            uri, heard_at = await asyncio.wait_for(updates.get(), 10)
            seen["first_ms"] = (heard_at - written_at) * 1000
            seen["own_scope"] = sorted({uri, *await told(updates)})
            stored = await bob.call_tool("store_data", {"scope": "shared", "key": "fact", "value": 1,
                                                        "session_id": bob_id})
            assert not stored.is_error, stored.content
            seen["other_scope"] = await told(updates)
            collector.cancel()
    print(json.dumps(seen))


if __name__ == "__main__":
    if sys.argv[1] == "--listen":
        asyncio.run(main_listen(*sys.argv[2:5]))
    else:
        asyncio.run(main(*sys.argv[1:3]))
