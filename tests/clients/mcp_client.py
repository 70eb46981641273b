"""chatapi's MCP tools through the official MCP Python SDK (the `mcp` package), over Streamable
HTTP (`/mcp`, with the protocol negotiated as the SDK does by default, or the older handshake
with sessions) and over stdio (`chatapi mcp --stdio` started as a local process). One scenario
per run:

    mcp_client.py SCENARIO MODE TARGET KEY [ARG...]

MODE: `auto` (the SDK's default), `legacy` (the initialize handshake and a session), or `stdio`
(TARGET is then `BINARY@MCP_URL`). The Rust test (tests/mcp.rs) makes the videos and the fake
upstream and checks what reached it; every check here is on what the SDK itself parsed. Prints
one JSON line last.
"""

import json
import sys

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

scenario, mode, target, key, *args = sys.argv[1:]
TOOLS = [
    "list_videos",
    "add_video_from_url",
    "video_status",
    "search_videos",
    "ask_about_videos",
    "get_transcript",
    "delete_video",
]


def client(key=key):
    if mode == "stdio":
        binary, url = target.split("@", 1)
        params = StdioServerParameters(
            command=binary,
            args=["mcp", "--stdio", "--url", url],
            env={"CHATAPI_KEY": key, "RUST_LOG": "warn"},
        )
        return Client(params)
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120)
    transport = streamable_http_client(f"{target}/mcp", http_client=http)
    return Client(transport, mode=mode, cache=None)


def result(called):
    """What a tool call gave: its text, its JSON, and whether it is a tool error."""
    return {
        "text": "".join(c.text for c in called.content if getattr(c, "type", "") == "text"),
        "json": called.structured_content,
        "error": bool(called.is_error),
    }


class Progress:
    def __init__(self):
        self.seen = []

    async def __call__(self, progress, total, message):
        self.seen.append({"progress": progress, "total": total, "message": message})


async def tour():
    """Every tool once on its happy path, the timelines as resources, progress as it comes."""
    video, link = args
    out = {}
    async with client() as c:
        listed = await c.list_tools()
        out["tools"] = {
            t.name: {
                "description": t.description,
                "schema": t.input_schema,
                "destructive": bool(t.annotations and t.annotations.destructive_hint),
                "read_only": bool(t.annotations and t.annotations.read_only_hint),
            }
            for t in listed.tools
        }
        out["list"] = result(await c.call_tool("list_videos", {"status": "ready"}))
        out["status"] = result(await c.call_tool("video_status", {"video_id": video}))
        out["search"] = result(
            await c.call_tool("search_videos", {"query": "tomatoes", "mode": "text", "video_ids": [video]})
        )
        asked = Progress()
        out["ask"] = result(
            await c.call_tool(
                "ask_about_videos",
                {"question": "When are the tomatoes planted?", "video_ids": [video]},
                progress_callback=asked,
            )
        )
        out["ask_progress"] = asked.seen
        out["ask_range"] = result(
            await c.call_tool(
                "ask_about_videos",
                {"question": "What happens?", "video_ids": [video], "start_s": 4.2, "end_s": 7},
            )
        )
        out["transcript"] = result(await c.call_tool("get_transcript", {"video_id": video}))
        out["transcript_range"] = result(
            await c.call_tool("get_transcript", {"video_id": video, "start_s": 3.5, "end_s": 6})
        )
        resources = await c.list_resources()
        out["resources"] = [{"uri": str(r.uri), "name": r.name, "mime": r.mime_type} for r in resources.resources]
        templates = await c.list_resource_templates()
        out["templates"] = [t.uri_template for t in templates.resource_templates]
        read = await c.read_resource(f"chatapi://videos/{video}/timeline")
        out["timeline"] = json.loads(read.contents[0].text)
        added = Progress()
        out["add"] = result(
            await c.call_tool(
                "add_video_from_url", {"url": link, "name": "linked", "wait": True}, progress_callback=added
            )
        )
        out["add_progress"] = added.seen
        new_id = out["add"]["json"]["id"]
        out["delete"] = result(await c.call_tool("delete_video", {"video_id": new_id}))
        out["after_delete"] = result(await c.call_tool("video_status", {"video_id": new_id}))
    return out


async def refusals():
    """Bad arguments for each tool, another tenant's video, a tool that does not exist."""
    (video,) = args
    bad = {
        "list_videos": {"limit": 0},
        "add_video_from_url": {"url": "ftp://example.com/a.mp4"},
        "video_status": {"video_id": 7},
        "search_videos": {"query": "tomatoes", "mode": "psychic"},
        "ask_about_videos": {"question": "Why?", "video_ids": []},
        "get_transcript": {"video_id": video, "start_s": 9, "end_s": 3},
        "delete_video": {"video": video},
    }
    out = {"bad": {}, "other_tenant": {}}
    async with client() as c:
        for tool, arguments in bad.items():
            out["bad"][tool] = result(await c.call_tool(tool, arguments))
        for tool, arguments in {
            "video_status": {"video_id": video},
            "get_transcript": {"video_id": video},
            "ask_about_videos": {"question": "Why?", "video_ids": [video]},
            "search_videos": {"query": "tomatoes", "video_ids": [video]},
            "delete_video": {"video_id": video},
        }.items():
            out["other_tenant"][tool] = result(await c.call_tool(tool, arguments))
        try:
            await c.read_resource(f"chatapi://videos/{video}/timeline")
            out["other_resource"] = "read"
        except Exception as e:  # the SDK raises the protocol error
            out["other_resource"] = str(e)
        out["listed"] = result(await c.call_tool("list_videos", {}))
        try:
            out["unknown"] = result(await c.call_tool("summon_dragon", {}))
        except Exception as e:
            out["unknown"] = str(e)
    return out


async def wrong_key():
    try:
        async with client(key="sk-wrong") as c:
            await c.list_tools()
        return {"connected": True}
    except BaseException as e:  # an ExceptionGroup from the SDK's task group, or its own error
        return {"connected": False, "error": describe(e)}


def describe(e):
    if isinstance(e, BaseExceptionGroup):
        return " | ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


async def cancel():
    """A question whose answer stalls after its first piece, cancelled once that piece arrives."""
    (video,) = args
    out = {}
    async with client() as c:
        first = anyio.Event()
        seen = []

        async def progress(done, total, message):
            seen.append(message)
            first.set()

        async with anyio.create_task_group() as tg:
            async def ask():
                await c.call_tool(
                    "ask_about_videos",
                    {"question": "When are the tomatoes planted?", "video_ids": [video]},
                    progress_callback=progress,
                )
                out["finished"] = True

            tg.start_soon(ask)
            with anyio.fail_after(60):
                await first.wait()
            tg.cancel_scope.cancel()
        out["seen"] = seen
        # The session goes on after a cancelled call.
        out["after"] = result(await c.call_tool("video_status", {"video_id": video}))
    return out


async def stdio_tour():
    """The same tools through the local process: list, ask with progress."""
    (video,) = args
    out = {}
    async with client() as c:
        out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        asked = Progress()
        out["ask"] = result(
            await c.call_tool(
                "ask_about_videos",
                {"question": "When are the tomatoes planted?", "video_ids": [video]},
                progress_callback=asked,
            )
        )
        out["ask_progress"] = asked.seen
        out["resources"] = [str(r.uri) for r in (await c.list_resources()).resources]
    return out


SCENARIOS = {
    "tour": tour,
    "refusals": refusals,
    "wrong_key": wrong_key,
    "cancel": cancel,
    "stdio_tour": stdio_tour,
}
print(json.dumps(anyio.run(SCENARIOS[scenario]), default=str))
