"""The built-in demo upstream: answers locally, no network, so `make run` works offline.

It reports usage like a real upstream (counted with the gateway's estimator), streams word
by word, and makes deterministic embeddings, so every path of the gateway can be tried.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
import uuid
from collections.abc import AsyncIterator

from routing.pricing import prompt_tokens_estimate, tokens_estimate
from routing.providers.base import ChatResult, Provider, StreamState, Usage
from routing.providers.demo_research import researcher_answer, researcher_step

STREAM_DELAY_SECONDS = 0.02


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                ).strip()
    return ""


def _answer(body: dict, model: str) -> str:
    step = researcher_step(body)
    if step is not None:  # an AI Researcher step (routing/providers/demo_research.py)
        return _limit(researcher_answer(body, step), body)
    asked = _last_user_text(body)[:200]
    text = (
        f"Hello from the tokenforge demo upstream ({model}). "
        f"You said: “{asked}”. "
        "This answer was generated locally, charged to your wallet at the route's price, "
        "and recorded in the ledger with its route."
    )
    return _limit(text, body)


def _limit(text: str, body: dict) -> str:
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(limit, int) and limit > 0:
        words, out = text.split(" "), []
        for word in words:
            if tokens_estimate(" ".join([*out, word])) > limit:
                break
            out.append(word)
        text = " ".join(out)
    return text


class DemoProvider(Provider):
    native_surface = "openai"

    async def chat(self, *, client, target, model, body, headers) -> ChatResult:
        text = _answer(body, model)
        usage = Usage(
            prompt_tokens=prompt_tokens_estimate(body), completion_tokens=tokens_estimate(text)
        )
        return ChatResult(
            body={
                "id": "chatcmpl-" + uuid.uuid4().hex[:24],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            },
            usage=usage,
        )

    def chat_stream(self, *, client, target, model, body, headers, state) -> AsyncIterator[dict]:
        return self._stream(model, body, state)

    async def _stream(self, model: str, body: dict, state: StreamState) -> AsyncIterator[dict]:
        text = _answer(body, model)
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        yield chunk({"role": "assistant", "content": ""})
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            state.delivered_text.append(piece)
            yield chunk({"content": piece})
            await asyncio.sleep(STREAM_DELAY_SECONDS)
        state.finish_reason = "stop"
        yield chunk({}, "stop")
        usage = Usage(
            prompt_tokens=prompt_tokens_estimate(body), completion_tokens=tokens_estimate(text)
        )
        state.usage = usage
        yield {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }

    async def embeddings(self, *, client, target, model, body) -> ChatResult:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data, prompt = [], 0
        for index, item in enumerate(items):
            text = item if isinstance(item, str) else " ".join(str(t) for t in item)
            prompt += tokens_estimate(text) if isinstance(item, str) else len(item)
            digest = hashlib.sha256(text.encode()).digest()
            vector = [round(v / 2**31, 6) for v in struct.unpack(">8i", digest)]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        usage = Usage(prompt_tokens=prompt)
        return ChatResult(
            body={
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
            },
            usage=usage,
        )
