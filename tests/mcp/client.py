"""Drives `orchestra mcp` with the official MCP Python SDK (`mcp` on PyPI), as an IDE would.

    python client.py ORCHESTRA_BINARY PROJECT_DIR [--url URL [--token TOKEN]] [--quick]

Without --url it starts `ORCHESTRA_BINARY mcp` in PROJECT_DIR and speaks stdio; with --url it
connects to an `orchestra mcp --http` serving PROJECT_DIR over streamable HTTP (sending
`Authorization: Bearer TOKEN` with --token). --quick stops after the tools and compiling.

PROJECT_DIR is a git repository holding pipelines/pr-review.yaml, pipelines/plan-with-human.yaml,
pipelines/broken.yaml (a pr-review with an unknown agent) and what they use. The script lists
the tools and checks their schemas, compiles pipelines, runs pr-review and follows it to its end,
forks it at checkpoints (replay_session, with an edited pipeline and state), resumes a stopped run
with an edited pipeline and state, then takes plan-with-human through its human review (a
question, a rejection, an approval) with answer_session, and checks the failures are tool errors
with the CLI's text. It writes pipelines/edited.yaml (pr-review with another personality for the
critic). Every structured
result is validated against the tool's output schema. It prints `ok: N checks` at the end and
exits non-zero on the first failed check.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time

import httpx2
import jsonschema
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

TOOLS = {
    "compile_pipeline": ["pipeline"],
    "run_pipeline": ["pipeline"],
    "list_sessions": [],
    "show_session": ["session"],
    "resume_session": ["session"],
    "replay_session": ["session", "checkpoint"],
    "answer_session": ["session", "text"],
}
PATIENCE = 60.0
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        raise AssertionError(what)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Orchestra:
    def __init__(self, client, schemas):
        self.client = client
        self.schemas = schemas

    async def call(self, tool, args):
        """A tool call that must succeed; its structured content, checked against the schema."""
        r = await self.client.call_tool(tool, args)
        text = "".join(getattr(c, "text", "") for c in r.content)
        check(not r.is_error, f"{tool} {json.dumps(args)} failed: {text}")
        out = r.structured_content
        check(out is not None, f"{tool} returned no structured content")
        jsonschema.validate(out, self.schemas[tool])
        check(json.loads(text) == out, f"{tool}: the text content is not the structured content")
        return out

    async def fail(self, tool, args):
        """A tool call that must be a tool error; its text."""
        r = await self.client.call_tool(tool, args)
        text = "".join(getattr(c, "text", "") for c in r.content)
        check(r.is_error, f"{tool} {json.dumps(args)} should have failed, gave: {text}")
        return text

    async def until_settled(self, session):
        """show_session until the session is no longer running."""
        deadline = time.monotonic() + PATIENCE
        while True:
            shown = await self.call("show_session", {"session": session})
            status = shown["session"]["status"]
            if status not in ("created", "running"):
                return shown
            check(time.monotonic() < deadline, f"session {session} still {status} after {PATIENCE}s")
            await asyncio.sleep(0.05)


async def main(binary, project, url=None, token=None, quick=False):
    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            server = StdioServerParameters(command=binary, args=["mcp"], cwd=project)
        else:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)))
            server = streamable_http_client(url, http_client=http)
        client = await stack.enter_async_context(Client(server))
        listed = (await client.list_tools()).tools
        check({t.name for t in listed} == set(TOOLS), f"tools: {[t.name for t in listed]}")
        schemas = {}
        for t in listed:
            for schema in (t.input_schema, t.output_schema):
                check(schema is not None and schema.get("type") == "object", f"{t.name}: {schema}")
                jsonschema.Draft202012Validator.check_schema(schema)
            check(sorted(t.input_schema.get("required", [])) == sorted(TOOLS[t.name]),
                  f"{t.name} requires {t.input_schema.get('required')}")
            check(t.description and len(t.description) > 40, f"{t.name} has no description")
            schemas[t.name] = t.output_schema
        check("inputs" in next(t for t in listed if t.name == "run_pipeline").input_schema["properties"],
              "run_pipeline takes inputs")
        o = Orchestra(client, schemas)

        # Compiling: the summary the CLI prints; an invalid pipeline is the CLI's error text.
        compiled = await o.call("compile_pipeline", {"pipeline": "pipelines/pr-review.yaml"})
        check(compiled["name"] == "pr-review", compiled["name"])
        check(compiled["agents"] == ["security-reviewer", "architecture-reviewer", "critic", "synthesizer"],
              compiled["agents"])
        check(compiled["inputs"] == ["base", "head"], compiled["inputs"])
        check(compiled["summary"].startswith("pipeline pr-review (pipelines/pr-review.yaml)\n"), compiled["summary"])
        broken = await o.fail("compile_pipeline", {"pipeline": "pipelines/broken.yaml"})
        check("pipelines/broken.yaml:" in broken and "unknown agent `critc`" in broken, broken)
        check(broken.endswith("error: `pipelines/broken.yaml` is not a valid pipeline: 1 error"), broken)
        missing = await o.fail("compile_pipeline", {"pipeline": "pipelines/nope.yaml"})
        check("cannot read `pipelines/nope.yaml`" in missing, missing)
        if quick:
            print(f"ok: {checks} checks")
            return

        # Bad input is a tool error with the CLI's text, and the server lives on.
        unknown = await o.fail("run_pipeline", {"pipeline": "pipelines/pr-review.yaml", "inputs": {"bse": "HEAD~1"}})
        check(unknown == "error: the pipeline has no input `bse`; did you mean `base`?\n  inputs: base, head", unknown)
        nodb = await o.fail("show_session", {"session": "no-such-session"})
        check(nodb.startswith("error: there is no session database at .orchestra/orchestra.db"), nodb)

        # A run, detached: the id at once, then followed to its end.
        started = await o.call("run_pipeline", {"pipeline": "pipelines/pr-review.yaml", "inputs": {"base": "HEAD~1"}})
        sid = started["session"]
        check(os.path.exists(os.path.join(project, started["log"])), started["log"])
        shown = await o.until_settled(sid)
        check(shown["session"]["status"] == "completed", json.dumps(shown["session"]))
        check(shown["session"]["pipeline"] == "pr-review", shown["session"]["pipeline"])
        check(shown["checkpoint"] == shown["session"]["checkpoints"][-1]["step"], "the last checkpoint")
        check("review" in shown["state"] and shown["state"]["review"], "the state holds the review")
        ran = [r["node"] for s in shown["steps"] for r in s["runs"]]
        check("synthesizer" in ran, f"node runs: {ran}")
        kinds = [e["event"] for e in shown["events"]]
        check(kinds[0] != "session_finished" and kinds[-1] == "session_finished", f"events: {kinds}")
        check(shown["chat"] is None, "no chat")
        nobody = await o.fail("show_session", {"session": "no-such-session"})
        check(nobody.startswith("error: ") and "no-such-session" in nobody, nobody)
        sessions = (await o.call("list_sessions", {}))["sessions"]
        row = next(s for s in sessions if s["id"] == sid)
        check(row["status"] == "completed" and row["pipeline"] == "pr-review", json.dumps(row))
        check(row["tokens_in"] > 0 and row["steps"] >= 4, json.dumps(row))

        # Forks, as `orchestra replay`: refused edits and checkpoints are the CLI's errors.
        review = open(os.path.join(project, "pipelines/pr-review.yaml")).read()
        edited = review.replace("    personality: skeptical\n    task: critique-findings",
                                "    personality: blunt\n    task: critique-findings", 1)
        check(edited != review, "pr-review changed shape")
        with open(os.path.join(project, "pipelines/edited.yaml"), "w") as f:
            f.write(edited)
        far = await o.fail("replay_session", {"session": sid, "checkpoint": 99})
        check(far.startswith("error: ") and "99" in far, far)
        unknown = await o.fail("replay_session", {"session": sid, "checkpoint": 1, "set": {"nosuch": 1}})
        check(unknown.startswith("error: ") and "--set nosuch: the pipeline has no state field `nosuch`" in unknown,
              unknown)
        nofile = await o.fail("replay_session", {"session": sid, "checkpoint": 1, "pipeline": "pipelines/nope.yaml"})
        check("cannot read `pipelines/nope.yaml`" in nofile, nofile)
        fork = await o.call("replay_session", {"session": sid, "checkpoint": 1, "no_run": True,
                                               "pipeline": "pipelines/edited.yaml", "set": {"critique": "from MCP"}})
        check(fork["parent"] == sid and fork["checkpoint"] == 1 and fork["session"] != sid, json.dumps(fork))
        check(fork["started"] is None and fork["session"] in fork["next"], json.dumps(fork))
        check(any("critic" in c for c in fork["changes"]), json.dumps(fork["changes"]))
        shown = await o.call("show_session", {"session": fork["session"]})
        check(shown["session"]["parent_session"] == sid and shown["session"]["parent_checkpoint"] == 1,
              json.dumps(shown["session"]))
        check(shown["session"]["status"] not in ("running", "completed"), json.dumps(shown["session"]))
        check(shown["state"].get("critique") == "from MCP", json.dumps(shown["state"]))
        again = await o.call("resume_session", {"session": fork["session"]})
        check(again["session"] == fork["session"], json.dumps(again))
        done = await o.until_settled(fork["session"])
        check(done["session"]["status"] == "completed", json.dumps(done["session"]))
        fork = await o.call("replay_session", {"session": sid, "checkpoint": 2})
        check(fork["started"] is not None and fork["started"]["session"] == fork["session"], json.dumps(fork))
        check(fork["changes"] == [], json.dumps(fork))
        done = await o.until_settled(fork["session"])
        check(done["session"]["status"] == "completed", json.dumps(done["session"]))
        check(done["session"]["parent_checkpoint"] == 2, json.dumps(done["session"]))

        # A stopped run, resumed: first with refused edits (the CLI's text; nothing changes),
        # then with an edited pipeline and state, as `--pipeline` and `--set`.
        started = await o.call("run_pipeline", {"pipeline": "pipelines/pr-review.yaml", "max_steps": 1})
        stopped = await o.until_settled(started["session"])
        check(stopped["session"]["status"] == "stopped", json.dumps(stopped["session"]))
        unknown = await o.fail("resume_session", {"session": started["session"], "set": {"nosuch": 1}})
        check(unknown.startswith("error: ") and "--set nosuch: the pipeline has no state field `nosuch`" in unknown,
              unknown)
        badvalue = await o.fail("resume_session", {"session": started["session"], "set": {"verdict": 3}})
        check("--set verdict=3: state field `verdict`" in badvalue, badvalue)
        nofile = await o.fail("resume_session", {"session": started["session"], "pipeline": "pipelines/nope.yaml"})
        check("cannot read `pipelines/nope.yaml`" in nofile, nofile)
        same = await o.call("show_session", {"session": started["session"]})
        check(same["session"]["checkpoints"] == stopped["session"]["checkpoints"], "a refused edit changed nothing")
        again = await o.call("resume_session", {"session": started["session"], "pipeline": "pipelines/edited.yaml",
                                                "set": {"critique": "from MCP"}})
        check(again["session"] == started["session"], json.dumps(again))
        resumed = await o.until_settled(started["session"])
        check(resumed["session"]["status"] == "completed", json.dumps(resumed["session"]))
        log = open(os.path.join(project, again["log"])).read()
        check("pipeline pipelines/edited.yaml (changes from the session's pipeline" in log and
              "set critique = " in log, log)
        steps = [c["step"] for c in resumed["session"]["checkpoints"]]
        edits = []
        for step in steps:
            at = await o.call("show_session", {"session": started["session"], "checkpoint": step})
            if at["state"].get("critique") == "from MCP":
                edits.append(step)
        check(edits, f"no checkpoint of {steps} holds the edited critique")
        done = await o.fail("resume_session", {"session": started["session"]})
        check(done.startswith(f"error: session `{started['session']}` is already completed"), done)

        # A human review, answered through MCP: the run pauses at the reviewer.
        started = await o.call("run_pipeline", {"pipeline": "pipelines/plan-with-human.yaml"})
        hid = started["session"]
        paused = await o.until_settled(hid)
        check(paused["session"]["status"] == "paused", json.dumps(paused["session"]))
        chat = paused["chat"]
        # No human was there when the chat was to open: the reviewer has not spoken yet.
        check(chat == {"node": "reviewer", "run_index": 0, "lines": []}, json.dumps(chat))
        bad = await o.fail("answer_session", {"session": hid, "text": "two\nlines"})
        check("one line" in bad, bad)
        # `/help` opens the chat without a word to the agent, which speaks first.
        opened = await o.call("answer_session", {"session": hid, "text": "/help"})
        check(opened["delivered"] == "resumed", json.dumps(opened))
        paused = await o.until_settled(hid)
        check(paused["session"]["status"] == "paused", json.dumps(paused["session"]))
        lines = paused["chat"]["lines"]
        check([l["who"] for l in lines] == ["agent"] and "rollback" in lines[0]["text"], json.dumps(lines))

        asked = await o.call("answer_session", {"session": hid, "text": "What happens when Redis is down?"})
        check(asked["delivered"] == "resumed" and asked["started"]["session"] == hid, json.dumps(asked))
        paused = await o.until_settled(hid)
        check(paused["session"]["status"] == "paused", json.dumps(paused["session"]))
        lines = paused["chat"]["lines"]
        check([l["who"] for l in lines] == ["agent", "human", "agent"], json.dumps(lines))
        check(lines[1]["text"] == "What happens when Redis is down?", json.dumps(lines))

        # A rejection sends the plan back to the planner; the reviewer then asks again.
        await o.call("answer_session", {"session": hid, "text": "/reject add a rollback"})
        paused = await o.until_settled(hid)
        check(paused["session"]["status"] == "paused", json.dumps(paused["session"]))
        check(paused["chat"]["run_index"] == 1, json.dumps(paused["chat"]))
        check([l["who"] for l in paused["chat"]["lines"]] == ["agent"], json.dumps(paused["chat"]))
        check(paused["state"]["verdict"] == "reject", json.dumps(paused["state"].get("verdict")))
        check("rollback" in paused["state"]["plan"].lower(), "the revised plan")

        await o.call("answer_session", {"session": hid, "text": "/approve ship it"})
        done = await o.until_settled(hid)
        check(done["session"]["status"] == "completed", json.dumps(done["session"]))
        check(done["state"]["verdict"] == "approve" and done["state"]["human_comment"] == "ship it",
              json.dumps(done["state"]))
        over = await o.fail("answer_session", {"session": hid, "text": "/approve"})
        check(over == f"error: session {hid} is completed; there is nothing to attach to (see `orchestra status {hid}`)", over)

    print(f"ok: {checks} checks")


if __name__ == "__main__":
    cli = argparse.ArgumentParser()
    cli.add_argument("binary")
    cli.add_argument("project")
    cli.add_argument("--url")
    cli.add_argument("--token")
    cli.add_argument("--quick", action="store_true")
    a = cli.parse_args()
    try:
        asyncio.run(main(a.binary, a.project, a.url, a.token, a.quick))
    except* AssertionError as group:
        # The client's task groups wrap what a check raised.
        failed = group
        while isinstance(failed, BaseExceptionGroup):
            failed = failed.exceptions[0]
        print(f"failed after {checks} checks: {failed}", file=sys.stderr)
        sys.exit(1)
