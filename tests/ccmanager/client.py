"""A client of CC Manager written only from its README and database schema.

It knows CC Manager's routes and the columns of `ccr_runs` (id, cwd, sessionId,
parentSessionId, mode, status, prompt, resultType, resultJson, durationMs, createdAt) and
`ccr_run_messages` (id, runId, index, messageType, messageJson, createdAt), and nothing of
cclog: it starts, resumes, forks and cancels runs the way such a client would, and checks
that every field it reads is there with the documented meaning.

Usage: client.py BASE_URL PROJECT_DIR. Exits 0 when everything held; prints what failed
otherwise. Standard library only.
"""

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime

BASE, PROJECT = sys.argv[1], sys.argv[2]
MODES = {"fresh", "resume", "fork"}
STATUSES = {"running", "completed", "error", "cancelled"}


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ok(method, path, body=None):
    status, answer = call(method, path, body)
    assert status == 200, f"{method} {path}: {status} {answer}"
    return answer


def timestamp(text):
    assert isinstance(text, str), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_run(run, prompt, mode):
    """A run row: every ccr_runs column, with its documented meaning."""
    for column in ["id", "cwd", "sessionId", "parentSessionId", "mode", "status", "prompt",
                   "resultType", "resultJson", "durationMs", "createdAt"]:
        assert column in run, f"run has no {column}: {run}"
    assert isinstance(run["id"], str) and run["id"], run
    assert run["mode"] in MODES and run["mode"] == mode, run
    assert run["status"] in STATUSES, run
    assert run["prompt"] == prompt, run
    assert os.path.samefile(run["cwd"], PROJECT), run
    timestamp(run["createdAt"])
    if run["status"] == "completed":
        assert isinstance(run["sessionId"], str), run
        result = run["resultJson"]
        if isinstance(result, str):  # a text column holding JSON reads either way
            result = json.loads(result)
        assert result["type"] == "result", result
        assert result["subtype"] == run["resultType"], run
        assert result["session_id"] == run["sessionId"], run
        assert isinstance(run["durationMs"], int) and run["durationMs"] >= 0, run
    return run


def check_messages(run):
    """ccr_run_messages rows of one run: ordered, unique ids, the SDK messages."""
    rows = ok("GET", f"/api/runs/{run['id']}/messages")
    assert rows, run
    ids = set()
    for position, row in enumerate(rows):
        for column in ["id", "runId", "index", "messageType", "messageJson", "createdAt"]:
            assert column in row, f"message has no {column}: {row}"
        assert isinstance(row["id"], int) and row["id"] not in ids, row
        ids.add(row["id"])
        assert row["runId"] == run["id"], row
        assert row["index"] == position, row
        message = row["messageJson"]
        if isinstance(message, str):
            message = json.loads(message)
        assert row["messageType"] == message["type"], row
        timestamp(row["createdAt"])
    first, last = rows[0]["messageJson"], rows[-1]["messageJson"]
    assert first["type"] == "system" and first["subtype"] == "init", first
    assert first["session_id"] == run["sessionId"], first
    if run["status"] == "completed":
        assert last == run["resultJson"], (last, run["resultJson"])
    return rows


# Start a fresh run: a new session.
started = check_run(ok("POST", "/api/runs/start", {"cwd": PROJECT, "prompt": "alpha: begin"}), "alpha: begin", "fresh")
assert started["status"] == "completed" and started["parentSessionId"] is None, started
assert ok("GET", f"/api/runs/{started['id']}") == started
check_messages(started)
origin = started["sessionId"]

# Resume: immutable history, so a new session whose parent is the resumed one.
resumed = check_run(ok("POST", "/api/runs/resume", {"sessionId": origin, "prompt": "beta: go on"}), "beta: go on", "resume")
assert resumed["status"] == "completed", resumed
assert resumed["parentSessionId"] == origin and resumed["sessionId"] != origin, resumed
check_messages(resumed)

# Fork: a new session branched off the original.
forked = check_run(ok("POST", "/api/runs/fork", {"sessionId": origin, "prompt": "gamma: try another"}), "gamma: try another", "fork")
assert forked["status"] == "completed", forked
assert forked["parentSessionId"] == origin and forked["sessionId"] not in (origin, resumed["sessionId"]), forked
check_messages(forked)

# Cancel: start blocks until the run ends, so start it on a thread and find it through
# the sessions' runs, as a CC Manager client must.
blocked = {}
starter = threading.Thread(target=lambda: blocked.update(run=call("POST", "/api/runs/start", {"cwd": PROJECT, "prompt": "sleepy: wait"})))
starter.start()
deadline, running = time.time() + 90, None
while running is None:
    assert time.time() < deadline, "the run never showed up as running"
    for session in ok("GET", "/api/sessions"):
        for run in ok("GET", f"/api/sessions/{session['id']}/runs"):
            if run["status"] == "running":
                running = run
    time.sleep(0.2)
cancelled = ok("DELETE", f"/api/runs/{running['id']}")
assert cancelled["id"] == running["id"] and cancelled["status"] == "cancelled", cancelled
starter.join(120)
status, answered = blocked["run"]
assert status == 200 and answered["status"] == "cancelled", blocked
check_messages(cancelled)

# Sessions: list, one, its messages across runs, its runs, its forks.
listed = {session["id"] for session in ok("GET", "/api/sessions")}
assert {origin, resumed["sessionId"], forked["sessionId"]} <= listed, listed
assert ok("GET", f"/api/sessions/{origin}")["id"] == origin
runs = ok("GET", f"/api/sessions/{origin}/runs")
assert [run["id"] for run in runs] == [started["id"]], runs
assert all(run["sessionId"] == origin for run in runs), runs
messages = ok("GET", f"/api/sessions/{origin}/messages")
assert messages and all(row["runId"] == started["id"] for row in messages), messages
forks = {session["id"] for session in ok("GET", f"/api/sessions/{origin}/forks")}
assert forks == {resumed["sessionId"], forked["sessionId"]}, forks

print(json.dumps({"ok": True, "runs": 4, "sessions": len(listed)}))
