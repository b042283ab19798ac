"""Usage an upstream reports is clamped to what is possible before it is priced.

An upstream (or a relay in front of one) may report negative or absurd token counts
(-1,000,000 prompt tokens gave a negative cost; 10^12 a cost the capture could not store, so
the hold stayed open and the request went unrecorded). Before pricing, every count is kept
within [0, bound]: output at most the hold's output limit, input at most the hold's input
upper bound plus a bounded slack (templates and tool schemas the upstream adds). What was
changed is recorded on the usage record (`anomalies`) and logged at ERROR for operators, and
the request settles as usual.
"""

from __future__ import annotations

import dataclasses
import logging

from routing.providers.base import Usage

log = logging.getLogger("routing.anomalies")

INPUT_SLACK_TOKENS = 1024
# Token classes on the input side (parts of prompt_tokens) and the output side.
_INPUT_CLASSES = (
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
)
_OUTPUT_CLASSES = ("completion_tokens", "reasoning_tokens", "output_audio_tokens")


def _bounds(*, prompt_upper: int, completion_upper: int) -> tuple[int, int]:
    prompt_bound = prompt_upper + max(prompt_upper, INPUT_SLACK_TOKENS)
    return prompt_bound, max(0, completion_upper)


def usage_clamp(
    *,
    usage: Usage,
    prompt_upper: int,
    completion_upper: int,
    request_id: str,
    upstream: str,
) -> Usage:
    """`usage` itself when plausible, else a clamped copy carrying its `anomalies`."""
    prompt_bound, completion_bound = _bounds(
        prompt_upper=prompt_upper, completion_upper=completion_upper
    )
    bounds = {name: prompt_bound for name in _INPUT_CLASSES} | {
        name: completion_bound for name in _OUTPUT_CLASSES
    }
    changes: dict = {}
    anomalies: list[dict] = []
    for f in dataclasses.fields(usage):
        value = getattr(usage, f.name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        bound = bounds.get(f.name, max(prompt_bound, completion_bound))
        if f.name == "cached_tokens":
            bound = min(
                bound, max(0, min(changes.get("prompt_tokens", usage.prompt_tokens), prompt_bound))
            )
        clamped = min(max(value, 0), bound)
        if clamped != value:
            changes[f.name] = clamped
            anomalies.append(
                {"kind": "usage_clamped", "field": f.name, "reported": value, "used": clamped}
            )
    if not anomalies:
        return usage
    log.error(
        "impossible usage from upstream %s on %s clamped: %s",
        upstream,
        request_id,
        ", ".join(f"{a['field']} {a['reported']} -> {a['used']}" for a in anomalies),
    )
    return dataclasses.replace(
        usage, **changes, anomalies=[*getattr(usage, "anomalies", []), *anomalies]
    )
