"""Drives chatapi's OpenAI routes with the official openai Python SDK, one scenario per run:

    openai_sdk.py SCENARIO BASE_URL KEY

The Rust test (tests/openai.rs) scripts the fake upstream for the scenario, runs this, and
requires exit 0. Every check is an assert on what the SDK itself parsed, so a wire detail the
SDK would reject or misread fails here.
"""

import sys

import openai

scenario, base_url, key = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello."},
]


def chat_stream():
    chunks = list(
        client.chat.completions.create(
            model="default", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    assert len({c.id for c in chunks}) == 1, "one id across the stream"
    assert all(c.object == "chat.completion.chunk" and c.model == "default" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there.", text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"], finishes
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None, chunks[-1]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0, usage


def chat_whole():
    done = client.chat.completions.create(
        model="tutor", messages=MESSAGES, temperature=0.3, seed=7, logprobs=True, top_logprobs=2
    )
    assert done.object == "chat.completion" and done.model == "tutor", done
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == "Hello there.", done
    assert done.choices[0].finish_reason == "stop"
    assert done.usage.prompt_tokens == 11 and done.usage.completion_tokens == 3, done.usage
    tokens = [t.token for t in done.choices[0].logprobs.content]
    assert tokens == ["Hello", " there", "."], done.choices[0].logprobs


def chat_tools():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    done = client.chat.completions.create(model="default", messages=MESSAGES, tools=tools)
    call = done.choices[0].message.tool_calls[0]
    assert done.choices[0].finish_reason == "tool_calls", done
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "get_weather", '{"city":"Oslo"}'), call
    # The same answer streamed: the SDK's own accumulation of the deltas.
    with client.chat.completions.stream(model="default", messages=MESSAGES, tools=tools) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "get_weather", '{"city":"Oslo"}'), call
    assert final.choices[0].finish_reason == "tool_calls", final
    # A tool result goes back as the next turn.
    follow = MESSAGES + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    done = client.chat.completions.create(model="default", messages=follow, tools=tools)
    assert done.choices[0].message.content == "Hello there.", done


def errors():
    bad = openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0)
    try:
        bad.chat.completions.create(model="default", messages=MESSAGES)
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401
    try:
        client.chat.completions.create(model="nobody", messages=MESSAGES)
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", e.body
    try:
        client.chat.completions.create(model="default", messages=MESSAGES, temperature=7)
        raise AssertionError("temperature 7 was accepted")
    except openai.BadRequestError as e:
        assert e.param == "temperature", e.body
    try:
        client.chat.completions.create(model="default", messages=MESSAGES, logit_bias={"50256": -100})
        raise AssertionError("logit_bias was silently dropped")
    except openai.BadRequestError as e:
        assert e.param == "logit_bias", e.body
    # The upstream breaks off mid-answer: what was said arrives, then the SDK raises.
    seen = []
    try:
        for chunk in client.chat.completions.create(model="default", messages=MESSAGES, stream=True):
            if chunk.choices:
                seen.append(chunk.choices[0].delta.content or "")
        raise AssertionError("a cut stream ended as if complete")
    except openai.APIError as e:
        assert "broke" in e.message, e.message
    assert "".join(seen) == "Hello", seen


def responses_whole():
    r = client.responses.create(model="default", input="Say hello.", instructions="Be brief.")
    assert r.object == "response" and r.status == "completed", r
    assert r.output_text == "Hello there.", r
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens > 0, r.usage


def responses_stream():
    deltas = []
    with client.responses.stream(model="default", input=[{"role": "user", "content": "Say hello."}]) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == "Hello there.", deltas
    assert final.output_text == "Hello there." and final.status == "completed", final


def models():
    ids = sorted(m.id for m in client.models.list())
    assert ids == ["default", "tutor", "video"], ids
    assert client.models.retrieve("tutor").id == "tutor"
    try:
        client.models.retrieve("nobody")
        raise AssertionError("an unknown model was listed")
    except openai.NotFoundError:
        pass


def mavera_chat():
    """Mavera's chat, the way its docs point the SDK at it (base_url `.../api/v1`): the SDK's
    `post` for a path of its own, streamed into the `responses.stream` helper's manager."""
    from openai import Stream
    from openai.lib.streaming.responses import ResponseStreamManager
    from openai.types.responses import Response, ResponseStreamEvent

    analysis = sys.argv[4]
    path = f"/video-analyses/{analysis}/chat"
    question = [{"role": "user", "content": "What do they plant?"}]
    whole = client.post(path, body={"messages": question}, cast_to=Response)
    assert whole.status == "completed" and whole.output_text == "Hello there.", whole
    manager = ResponseStreamManager(
        lambda: client.post(
            path,
            body={"messages": question, "stream": True},
            cast_to=Response,
            stream=True,
            stream_cls=Stream[ResponseStreamEvent],
        ),
        text_format=openai.omit,
        input_tools=openai.omit,
        starting_after=None,
    )
    deltas = []
    with manager as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == "Hello there.", deltas
    assert final.output_text == "Hello there." and final.usage.total_tokens > 0, final
    got = client.get(f"/video-analyses/{analysis}", cast_to=object)
    assert got["status"] == "completed" and got["chunks"], got
    try:
        client.post("/video-analyses/vid_missing/chat", body={"messages": question}, cast_to=Response)
        raise AssertionError("a chat about a missing analysis was answered")
    except openai.NotFoundError as e:
        assert e.code == "resource_not_found", e.body


globals()[scenario]()
print(f"ok {scenario}")
