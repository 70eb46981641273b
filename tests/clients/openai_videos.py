"""A video in an OpenAI request, through the real clients: the official openai SDK (chat and
Responses, streamed and whole; Mavera's `/api/v1/responses` with `responses.create`) and
LiteLLM's SDK with chatapi as an OpenAI-compatible provider. One scenario per run:

    openai_videos.py SCENARIO BASE_URL KEY VIDEO [ARG]

The Rust test (tests/openai_videos.rs) has the fake upstream answer with a stamp and checks what
went upstream; every check here is on what the client itself parsed. Prints one JSON line last.
"""

import json
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import

import openai

scenario, base, key, video = sys.argv[1:5]
arg = sys.argv[5] if len(sys.argv) > 5 else None
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=60)
QUESTION = "When are the tomatoes planted?"


def video_part(url, **range_):
    return {"type": "video_url", "video_url": {"url": url, **range_}}


def chat_messages(*parts):
    return [{"role": "user", "content": [{"type": "text", "text": QUESTION}, *parts]}]


def responses_input(url):
    return [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": QUESTION},
                {"type": "input_video", "video_url": url},
            ],
        }
    ]


def chat_whole():
    done = client.chat.completions.create(model="video", messages=chat_messages(video_part(video)))
    return {"text": done.choices[0].message.content, "finish": done.choices[0].finish_reason}


def chat_stream():
    chunks = list(
        client.chat.completions.create(
            model="video", messages=chat_messages(video_part(video, start=5, end=7)), stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return {"text": text}


def chat_by_url():
    # This server's own URL of the video (the `media_url` a client was given).
    done = client.chat.completions.create(model="video", messages=chat_messages(video_part(arg)))
    return {"text": done.choices[0].message.content}


def chat_two():
    done = client.chat.completions.create(
        model="video", messages=chat_messages(video_part(video), video_part(arg))
    )
    return {"text": done.choices[0].message.content}


def responses_whole():
    done = client.responses.create(model="video", input=responses_input(video))
    return {"text": done.output_text, "status": done.status}


def responses_stream():
    with client.responses.stream(model="video", input=responses_input(video)) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text, (deltas, final.output_text)
    return {"text": final.output_text}


def mavera_responses():
    mavera = openai.OpenAI(base_url=f"{base}/api/v1", api_key=key, max_retries=0, timeout=60)
    done = mavera.responses.create(model="mavera-1", input=responses_input(video))
    assert done.model == "mavera-1", done.model
    return {"text": done.output_text}


def litellm_chat():
    import litellm

    done = litellm.completion(
        model="openai/video",
        api_base=f"{base}/v1",
        api_key=key,
        messages=chat_messages(video_part(video)),
    )
    streamed = litellm.completion(
        model="openai/video",
        api_base=f"{base}/v1",
        api_key=key,
        messages=chat_messages(video_part(video)),
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    return {"text": done.choices[0].message.content, "streamed": text}


def refused():
    """Each request is refused with the error class and words the SDK gives its caller."""
    out = {}

    def attempt(name, **kwargs):
        try:
            client.chat.completions.create(model="video", **kwargs)
        except openai.APIStatusError as e:
            body = e.body if isinstance(e.body, dict) else {}
            out[name] = {
                "status": e.status_code,
                "code": body.get("code"),
                "param": body.get("param"),
                "message": body.get("message"),
            }
        else:
            out[name] = "answered"

    attempt("missing", messages=chat_messages(video_part("vid_0000000000000000000000000000dead")))
    attempt("other_tenant", messages=chat_messages(video_part(arg)))
    attempt(
        "image",
        messages=chat_messages(
            video_part(video), {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
        ),
    )
    attempt(
        "audio",
        messages=chat_messages({"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}),
    )
    attempt("backwards", messages=chat_messages(video_part(video, start=9, end=3)))
    attempt("negative", messages=chat_messages(video_part(video, start=-1)))
    attempt("not_a_video", messages=chat_messages(video_part("ftp://example.com/a.mp4")))
    attempt("too_many", messages=chat_messages(*[video_part(video)] * 11))
    attempt(
        "on_system",
        messages=[{"role": "system", "content": [video_part(video)]}, {"role": "user", "content": QUESTION}],
    )
    attempt("huge_url", messages=chat_messages(video_part("https://example.com/" + "a" * 3000)))
    return out


def refused_link():
    try:
        client.chat.completions.create(model="video", messages=chat_messages(video_part(video)))
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"status": e.status_code, "code": body.get("code"), "message": body.get("message")}
    return "answered"


print(json.dumps(globals()[scenario]()))
