"""The ChatAPI endpoint a room owner would write instead of chatapi: FastAPI + the openai SDK,
streaming `data: {"content": ...}` events. The benchmark's peer; run as
`python app.py --port PORT --upstream http://127.0.0.1:MOCK/v1`."""
import argparse
import json

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--upstream", required=True)
args = parser.parse_args()

client = AsyncOpenAI(base_url=args.upstream, api_key="not-needed")
app = FastAPI()


@app.post("/chat")
async def chat(request: Request):
    body = await request.json()
    messages = [{"role": "system", "content": "You are a benchmark."}] + [
        {"role": m["role"], "content": m.get("content") or ""} for m in body["messages"]
    ]

    async def events():
        stream = await client.chat.completions.create(
            model="mock:chunks=20,gap=0,ttft=0,hold=0", messages=messages, stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield f"data: {json.dumps({'content': chunk.choices[0].delta.content})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
