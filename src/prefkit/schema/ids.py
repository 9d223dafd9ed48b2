"""Deterministic, content-derived string ids.

Prompts and responses get ids derived from their content (xxh3-128 of a canonical
encoding), so the same prompt read from two files, or twice from one file, maps to one
row, and converting a dataset twice gives identical ids. Judgments and rankings are
events, not content: two judges may give the same verdict on the same pair, so their ids
come from their position in the input (``<stem>:<row>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import xxhash

PROMPT_PREFIX = "p_"
RESPONSE_PREFIX = "r_"


def _digest(payload: Any) -> str:
    return xxhash.xxh3_128_hexdigest(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))


def prompt_id(
    messages: Sequence[Mapping[str, Any]], context: Mapping[str, Any] | None = None
) -> str:
    """Id of a prompt: a hash of its turns and context."""
    return PROMPT_PREFIX + _digest([messages, context or None])


def response_id(
    prompt: str,
    messages: Sequence[Mapping[str, Any]],
    source: str | None = None,
    media: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """Id of a response: a hash of its prompt id, its turns, who wrote it and its media."""
    payload: list[Any] = [prompt, messages, source]
    if media:
        payload.append(media)
    return RESPONSE_PREFIX + _digest(payload)


def one_turn_prompt_ids(texts: Sequence[str]) -> list[str]:
    """``prompt_id`` of many one-user-turn prompts at once, without building messages.

    Hashes exactly the bytes :func:`prompt_id` hashes for ``[{"role": "user",
    "content": text}]`` (orjson with sorted keys: content before role).
    """
    dumps, digest = orjson.dumps, xxhash.xxh3_128_hexdigest
    return [
        PROMPT_PREFIX + digest(b'[[{"content":' + dumps(t) + b',"role":"user"}],null]')
        for t in texts
    ]


def one_turn_response_ids(prompt_ids: Sequence[str], texts: Sequence[str]) -> list[str]:
    """``response_id`` of many one-assistant-turn responses without a source, at once
    (the bytes :func:`response_id` hashes)."""
    dumps, digest = orjson.dumps, xxhash.xxh3_128_hexdigest
    return [
        RESPONSE_PREFIX
        + digest(
            b'["' + pid.encode() + b'",[{"content":' + dumps(t) + b',"role":"assistant"}],null]'
        )
        for pid, t in zip(prompt_ids, texts, strict=True)
    ]


def event_id(stem: str, row: int) -> str:
    """Id of a judgment or ranking: where it came from in the input."""
    return f"{stem}:{row}"
