"""Drives chatapi's video dialects with their real client packages, one scenario per run:

    video_dialects.py SCENARIO BASE_URL KEY [ARGS...]

pymavi (MAVI v1.0) and reka-mcp's RekaClient (Reka Vision v2). The Rust test
(tests/video_dialects.rs) prepares the server and the fake upstream, runs this, requires exit
0 and reads the one JSON line it prints. Asserts here are on what the client itself parsed.
"""

import asyncio
import json
import os
import sys

scenario, base, key, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]


def out(value):
    print(json.dumps(value))


# --- MAVI v1.0, with pymavi ---------------------------------------------------------------


def mavi(k=key):
    from pymavi import MaviClient

    # pymavi joins paths onto base_url as given: it needs the trailing slash.
    return MaviClient(k, base_url=f"{base}/api/serve/video/")


def mavi_upload():
    path, callback = args[0], args[1]
    # pymavi sends the path it was given as the file name: a relative one with `..` in it.
    os.chdir(os.path.dirname(path))
    relative = os.path.join("..", os.path.basename(os.path.dirname(path)), os.path.basename(path))
    video_no, name = mavi().upload_video(relative, callback_uri=callback)
    assert name == os.path.basename(path), name
    out({"videoNo": video_no})


def mavi_chat():
    video_no, question = args[0], args[1]
    client = mavi()
    pieces = list(client.chat_with_videos([video_no], question, stream=True))
    whole = client.chat_with_videos(
        [video_no], question, history=[{"user": "Hi", "robot": "Hello."}], stream=False
    )
    assert isinstance(whole, str), repr(whole)
    out({"pieces": pieces, "whole": whole})


def mavi_list():
    out(mavi().search_video_metadata(video_status="PARSE", num_results=10))


def mavi_errors():
    from pymavi.exceptions import MaviAuthenticationError

    video_no = args[0]
    try:
        mavi("not-the-key").search_video_metadata()
        raise AssertionError("a wrong key was accepted")
    except MaviAuthenticationError:
        pass
    # pymavi never raises from chat: an unknown video ends the generator with what went wrong.
    missing = list(mavi().chat_with_videos(["mavi_missing"], "anything?", stream=True))
    assert missing == [], missing
    mavi().delete_video([video_no])
    left = mavi().search_video_metadata(video_status=None)
    assert video_no not in left, left
    out({"ok": True})


def mavi_search():
    video_no = args[0]
    client = mavi()
    found = client.search_video("a locomotive in the hills")
    assert list(found)[0] == video_no, found
    clips = client.search_key_clip("a locomotive in the hills", [video_no], limit=3)
    try:
        client.search_video("   ")
        raise AssertionError("an empty search was answered")
    except Exception as e:  # pymavi raises MaviAPIError on any other 4xx
        assert "searchValue" in str(e), e
    out({"videos": found, "clips": clips})


# --- Reka Vision v2, with reka-mcp's client ------------------------------------------------


def reka(k=key):
    from reka_mcp.client import RekaClient

    return RekaClient(base, k)


async def reka_upload():
    client = reka()
    uploaded = await client.upload_video_file(file_path=args[0], name="garden tour")
    assert uploaded.status in ("uploading", "uploaded"), uploaded
    out({"video_id": uploaded.video_id})


async def reka_read():
    video_id = args[0]
    client = reka()
    video = await client.get_video(video_id)
    listed = await client.list_videos(video_ids=[video_id, "vid_missing"])
    assert [v.video_id for v in listed] == [video_id], listed
    plan = await client.plan_features(video_id, ["transcript", "captions"])
    assert plan.done and plan.actionable == [], plan
    transcript = await client.get_transcript(video_id, start=4.0, end=8.0)
    captions = await client.get_captions(video_id)
    out(
        {
            "video": video.model_dump(),
            "transcript": transcript,
            "captions": captions,
        }
    )


async def reka_chat():
    video_id, start, end = args[0], float(args[1]), float(args[2])
    answer = await reka().chat(
        [{"role": "user", "content": "What is written on screen?"}],
        [{"video_id": video_id, "start": start, "end": end}],
    )
    out(answer)


async def reka_search():
    video_id = args[0]
    client = reka()
    hits = await client.search_videos("a two-wheeled ride by the sea", max_results=3)
    in_one = await client.search_videos("a locomotive in the hills", video_ids=[video_id])
    out({"hits": hits, "in_one": in_one})


async def reka_errors():
    from reka_mcp.client import AuthError, NotFoundError, RekaAPIError

    video_id = args[0]
    try:
        await reka("not-the-key").get_video(video_id)
        raise AssertionError("a wrong key was accepted")
    except AuthError:
        pass
    try:
        await reka().chat(
            [{"role": "user", "content": "hi"}], [{"video_id": "vid_missing"}]
        )
        raise AssertionError("a chat about a missing video was answered")
    except NotFoundError as e:
        assert "vid_missing" in str(e), e
    try:
        await reka().chat([{"role": "user", "content": "hi"}], [])
        raise AssertionError("a chat without context was answered")
    except RekaAPIError as e:
        assert "context" in str(e), e
    deleted = await reka().delete_video(video_id)
    assert deleted.status == "deleted", deleted
    try:
        await reka().get_video(video_id)
        raise AssertionError("a deleted video was found")
    except NotFoundError:
        pass
    out({"ok": True})


fn = globals()[scenario]
if asyncio.iscoroutinefunction(fn):
    asyncio.run(fn())
else:
    fn()
