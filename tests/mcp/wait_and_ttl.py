"""Two coordinator clients (the official Python MCP SDK) hand work to each other and let a
claim lapse: TTLs, wait_for_change and their bad input, over stdio through `cclog mcp` (two
relay processes) or over Streamable HTTP.

Usage: wait_and_ttl.py stdio CCLOG_BINARY DATA_DIR   (run in the project directory)
       wait_and_ttl.py http URL TOKEN

Prints one JSON object: what each step saw (the Rust test asserts on it too).
"""

import asyncio
import contextlib
import json
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


@contextlib.asynccontextmanager
async def connect(mode, a, b):
    if mode == "stdio":
        params = StdioServerParameters(command=a, args=["--data", b, "mcp"])
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session
    else:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {b}"}, timeout=400) as http:
            async with streamable_http_client(a, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    yield session


class Client:
    def __init__(self, session, me):
        self.session, self.me = session, me

    async def call(self, tool, **arguments):
        result = await self.session.call_tool(tool, {**arguments, "session_id": self.me})
        assert not result.is_error, f"{tool} {arguments} failed: {result.content}"
        return result.structured_content

    async def refused(self, tool, **arguments):
        result = await self.session.call_tool(tool, {**arguments, "session_id": self.me})
        assert result.is_error, f"{tool} {arguments} was not refused: {result.structured_content}"
        return result.content[0].text


@contextlib.asynccontextmanager
async def signed_on(mode, a, b):
    async with connect(mode, a, b) as session:
        signed = await session.call_tool("sign_on", {})
        assert not signed.is_error, signed.content
        yield Client(session, signed.structured_content["session_id"])


async def main(mode, a, b):
    seen = {}
    async with signed_on(mode, a, b) as alice, signed_on(mode, a, b) as bob:
        # A claim with a 1 s TTL lapses on its own: read as absent, not listed, free again.
        claim = await alice.call("store_data", scope="claims", key="job-1", value={"by": alice.me},
                                 expected_version=0, ttl_seconds=1)
        assert claim["stored"] and claim["expires_at"], claim
        taken = await bob.call("store_data", scope="claims", key="job-1", value={"by": bob.me}, expected_version=0)
        assert not taken["stored"] and taken["version"] == 1, taken
        await asyncio.sleep(1.5)
        gone = await bob.call("retrieve_data", scope="claims", key="job-1")
        assert not gone["found"] and gone["value"] is None, gone
        listed = await bob.call("list_keys", scope="claims")
        assert "job-1" not in listed["names"], listed
        retaken = await bob.call("store_data", scope="claims", key="job-1", value={"by": bob.me}, expected_version=0)
        assert retaken["stored"] and retaken["version"] == 2, retaken
        history = (await bob.call("key_history", scope="claims", key="job-1"))["versions"]
        assert [v["version"] for v in history] == [1, 2], history
        assert history[0]["expired"] and history[0]["expires_at"] == claim["expires_at"], history
        assert not history[1].get("expired"), history
        # as_of: alive at its own write, lapsed after its expiry and before the retake.
        then = await bob.call("retrieve_data", scope="claims", key="job-1", as_of=claim["log_position"])
        assert then["found"] and then["value"] == {"by": alice.me}, then
        seen["ttl"] = {"claim": claim, "retaken": retaken, "history": history}

        # Waiting: alice waits for bob's result; bob writes it 2 s later.
        async def bob_delivers():
            await asyncio.sleep(2)
            stored = await bob.call("store_data", scope="handoff", key="result", value={"answer": 42})
            return stored, time.monotonic()

        started = time.monotonic()
        waited, (stored, stored_at) = await asyncio.gather(
            alice.call("wait_for_change", scope="handoff", key="result", after_version=0, timeout_seconds=30),
            bob_delivers())
        answered_at = time.monotonic()
        assert waited["changed"] and waited["reason"] == "written", waited
        assert waited["value"] == {"answer": 42} and waited["version"] == stored["version"] == 1, waited
        seen["handoff"] = {"waited": waited, "latency_ms": (answered_at - stored_at) * 1000,
                           "waited_s": answered_at - started}
        # Already past the version: answers at once.
        at_once = await alice.call("wait_for_change", scope="handoff", key="result", after_version=0)
        assert at_once["changed"] and at_once["value"] == {"answer": 42}, at_once

        # A timeout answers changed: false with the version there is.
        before = time.monotonic()
        quiet = await alice.call("wait_for_change", scope="handoff", key="result", after_version=1,
                                 timeout_seconds=0.5)
        assert not quiet["changed"] and quiet["reason"] is None and quiet["version"] == 1, quiet
        assert quiet["value"] == {"answer": 42}, quiet
        seen["timeout_s"] = time.monotonic() - before

        # A value's expiry wakes whoever waits on it, and so does a deletion.
        lock = await bob.call("store_data", scope="handoff", key="lock", value=1, ttl_seconds=1)
        lapsed = await alice.call("wait_for_change", scope="handoff", key="lock", after_version=lock["version"],
                                  timeout_seconds=30)
        assert lapsed["changed"] and lapsed["reason"] == "expired" and lapsed["value"] is None, lapsed

        async def bob_deletes():
            await asyncio.sleep(0.5)
            await bob.call("delete_data", scope="handoff", key="result")

        deleted, _ = await asyncio.gather(
            alice.call("wait_for_change", scope="handoff", key="result", timeout_seconds=30), bob_deletes())
        assert deleted["changed"] and deleted["reason"] == "deleted" and deleted["version"] == 2, deleted

        # While alice waits, her other calls are answered (the relay does not queue them).
        async def alice_meanwhile():
            await asyncio.sleep(0.3)
            read_at = time.monotonic()
            await alice.call("list_scopes")
            return time.monotonic() - read_at

        long_wait, meanwhile_s = await asyncio.gather(
            alice.call("wait_for_change", scope="handoff", key="never", timeout_seconds=2), alice_meanwhile())
        assert not long_wait["changed"] and meanwhile_s < 1.0, (long_wait, meanwhile_s)

        # Bad input: tool errors that name the limits.
        seen["errors"] = {
            "negative_ttl": await alice.refused("store_data", scope="x", key="y", value=1, ttl_seconds=-1),
            "huge_ttl": await alice.refused("store_data", scope="x", key="y", value=1, ttl_seconds=1e12),
            "huge_timeout": await alice.refused("wait_for_change", scope="x", key="y", timeout_seconds=301),
            "negative_timeout": await alice.refused("wait_for_change", scope="x", key="y", timeout_seconds=-1),
        }
        for name, text in seen["errors"].items():
            assert "out of range" in text, (name, text)
        assert "31536000" in seen["errors"]["huge_ttl"] and "300" in seen["errors"]["huge_timeout"], seen["errors"]
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
