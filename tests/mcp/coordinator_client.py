"""Drives cclog's MCP coordinator with the official Python MCP SDK (`mcp` from PyPI).

Usage: coordinator_client.py http URL [TOKEN]
       coordinator_client.py stdio CCLOG_BINARY DATA_DIR

Lists the tools, runs every one of them with good and bad input, and prints one JSON
object summarising what it saw; any surprise raises, so the exit status is the verdict.
"""

import asyncio
import contextlib
import json
import sys
import uuid

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {
    "sign_on", "sign_off", "store_data", "retrieve_data", "delete_data",
    "list_keys", "list_scopes", "delete_scope", "key_history",
}


@contextlib.asynccontextmanager
async def connect(argv):
    if argv[0] == "http":
        headers = {"Authorization": f"Bearer {argv[2]}"} if len(argv) > 2 else {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(argv[1], http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    yield session
    else:
        params = StdioServerParameters(command=argv[1], args=["--data", argv[2], "mcp"])
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                yield session


async def call(session, name, **arguments):
    result = await session.call_tool(name, arguments)
    return result


def structured(result):
    assert not result.is_error, f"tool error: {result.content}"
    data = result.structured_content
    assert isinstance(data, dict), f"no structured content: {result}"
    return data


def error_text(result):
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return " ".join(getattr(block, "text", "") for block in result.content)


async def main(argv):
    # Scopes of this run only, so that clients running at once do not see each other's.
    tag = uuid.uuid4().hex[:8]
    progress, notes = f"progress-{tag}", f"notes-{tag}"
    seen = {"progress_scope": progress}
    async with connect(argv) as session:
        await session.initialize()
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert EXPECTED_TOOLS <= set(tools), f"missing tools: {EXPECTED_TOOLS - set(tools)}"
        for name in EXPECTED_TOOLS:
            assert tools[name].description and len(tools[name].description) > 30, name
        assert tools["retrieve_data"].annotations.read_only_hint is True
        assert tools["delete_scope"].annotations.destructive_hint is True
        assert tools["store_data"].output_schema, "structured output is declared"
        seen["tools"] = sorted(tools)

        # Before sign_on, without a session_id: a tool error that says what to do.
        early = error_text(await call(session, "store_data", scope="s", key="k", value=1))
        assert "sign_on" in early, early

        me = structured(await call(session, "sign_on"))
        assert me["session_id"].startswith("claude_"), me
        assert me["full_scope_prefix"] == f"{me['machine']}:{me['project']}:", me
        sid = me["session_id"]
        seen["signed_on"] = me

        # A second sign-on gets another instance and sees the first.
        other = structured(await call(session, "sign_on"))
        assert other["session_id"] != sid, other
        assert sid in [entry["session_id"] for entry in other["others"]], other

        stored = structured(await call(session, "store_data", scope=progress, key="step", value={"n": 1}, session_id=sid))
        assert stored["stored"] and stored["version"] == 1, stored
        first_position = stored["log_position"]
        stored = structured(await call(session, "store_data", scope=progress, key="step", value={"n": 2},
                                       expected_version=1, session_id=sid))
        assert stored["stored"] and stored["version"] == 2, stored
        conflict = structured(await call(session, "store_data", scope=progress, key="step", value={"n": 99},
                                         expected_version=1, session_id=sid))
        assert not conflict["stored"] and conflict["version"] == 2, conflict
        assert conflict["current"]["value"] == {"n": 2}, conflict

        retrieved = await call(session, "retrieve_data", scope=progress, key="step", session_id=sid)
        now = structured(retrieved)
        assert now["found"] and now["value"] == {"n": 2} and now["version"] == 2, now
        # The text a model reads starts with the value, as the Python coordinator's bare answer does.
        text = " ".join(getattr(block, "text", "") for block in retrieved.content)
        assert text.startswith('{"value":{"n":2}'), text
        assert now["written_by"].startswith(sid + "@"), now
        then = structured(await call(session, "retrieve_data", scope=progress, key="step", as_of=first_position,
                                     session_id=sid))
        assert then["value"] == {"n": 1}, then

        structured(await call(session, "store_data", scope=notes, key="a", value="text", session_id=sid))
        keys = structured(await call(session, "list_keys", scope=progress, session_id=sid))
        assert keys["names"] == ["step"], keys
        scopes = structured(await call(session, "list_scopes", pattern=f"*-{tag}", session_id=sid))
        assert scopes["names"] == [notes, progress], scopes
        only = structured(await call(session, "list_scopes", pattern=f"prog*-{tag}", session_id=sid))
        assert only["names"] == [progress], only
        everything = structured(await call(session, "list_scopes", session_id=sid))
        assert {notes, progress} <= set(everything["names"]), everything

        deleted = structured(await call(session, "delete_data", scope=progress, key="step", session_id=sid))
        assert deleted["deleted"], deleted
        gone = structured(await call(session, "retrieve_data", scope=progress, key="step", session_id=sid))
        assert not gone["found"], gone
        history = structured(await call(session, "key_history", scope=progress, key="step", session_id=sid))
        assert [version["value"] for version in history["versions"]] == [{"n": 1}, {"n": 2}, None], history
        dropped = structured(await call(session, "delete_scope", scope=notes, session_id=sid))
        assert dropped["keys_deleted"] == 1, dropped
        seen["history"] = history["versions"]

        # Bad input: a tool error with what to do; nothing stored.
        for bad in [dict(scope="", key="k", value=1), dict(scope="s", key="", value=1),
                    dict(scope="s" * 300, key="k", value=1), dict(scope="s\u0007", key="k", value=1),
                    dict(scope="s", key="k", value="x" * (1 << 20))]:
            message = error_text(await call(session, "store_data", session_id=sid, **bad))
            assert message, bad
        assert "glob" in error_text(await call(session, "list_scopes", pattern="[", session_id=sid))
        assert not structured(await call(session, "list_keys", scope="s", session_id=sid))["names"]

        # Resources: the context names this instance; its state is its own scope.
        structured(await call(session, "store_data", scope=sid, key="summary", value=f"working on {tag}", session_id=sid))
        resources = [str(resource.uri) for resource in (await session.list_resources()).resources]
        assert "session://context" in resources, resources
        templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
        assert "session://state/{session_id}" in templates, templates
        context = json.loads((await session.read_resource("session://context")).contents[0].text)
        mine = [entry for entry in context["signed_on"] if entry["session_id"] == sid]
        assert mine and mine[0]["working_on"] == {"summary": f"working on {tag}"}, context
        assert context["machine"] == me["machine"] and "sign_on" in context["workflow"], context
        state = json.loads((await session.read_resource(f"session://state/{sid}")).contents[0].text)
        assert state["values"]["summary"] == f"working on {tag}", state
        structured(await call(session, "delete_scope", scope=sid, session_id=sid))
        # Prompts walk a model through the workflow.
        prompts = {prompt.name for prompt in (await session.list_prompts()).prompts}
        assert {"startup", "sign-off"} <= prompts, prompts
        startup = await session.get_prompt("startup", {})
        assert "sign_on" in startup.messages[0].content.text, startup
        leaving = await session.get_prompt("sign-off", {})
        assert "sign_off" in leaving.messages[0].content.text, leaving
        seen["resources"], seen["prompts"] = resources, sorted(prompts)

        released = structured(await call(session, "sign_off", session_id=sid))
        assert released["released"], released
        structured(await call(session, "sign_off", session_id=other["session_id"]))
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
