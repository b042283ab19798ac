"""Usage an upstream reports is clamped to what is possible before it is priced.

An upstream (or a relay in front of one) may report negative or absurd token counts
(-1,000,000 prompt tokens gave a negative cost; 10^12 a cost the capture could not store, so
the hold stayed open and the request went unrecorded). Before pricing, every count is kept
within [0, bound]: the total at most what the hold allowed plus a bounded slack
(`ROUTING_USAGE_SLACK_TOKENS`), each part at most its whole. What was
changed is recorded on the usage record (`anomalies`) and logged at ERROR for operators, and
the request settles as usual.
"""

from __future__ import annotations

import dataclasses
import logging

from routing.providers.base import Usage

log = logging.getLogger("routing.anomalies")

# Token classes on the input side (parts of prompt_tokens) and the output side.
_INPUT_PARTS = (
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
)
_OUTPUT_PARTS = ("reasoning_tokens", "output_audio_tokens")


def _slack() -> int:
    from django.conf import settings

    return max(0, int(settings.ROUTING_USAGE_SLACK_TOKENS))


def usage_clamp(
    *,
    usage: Usage,
    prompt_upper: int,
    completion_upper: int,
    request_id: str,
    upstream: str,
) -> Usage:
    """`usage` itself when plausible, else a clamped copy carrying its `anomalies`.

    Bounds: every count >= 0; the total at most what the hold allowed (`prompt_upper` +
    `completion_upper`) plus `ROUTING_USAGE_SLACK_TOKENS` (about the largest context window:
    what an upstream may legitimately count beyond our estimate, e.g. templates or images);
    a part (cache reads/writes, reasoning, audio) at most its whole. Usage within the bounds
    but above the hold is charged and booked as shortfall by the ledger."""
    slack = _slack()
    prompt_bound = prompt_upper + slack
    changes: dict = {}
    anomalies: list[dict] = []

    def clamp(name: str, bound: int) -> int:
        value = getattr(usage, name, None)
        if isinstance(value, bool) or not isinstance(value, int):
            return 0
        used = min(max(value, 0), max(0, bound))
        if used != value:
            changes[name] = used
            anomalies.append(
                {"kind": "usage_clamped", "field": name, "reported": value, "used": used}
            )
        return used

    prompt = clamp("prompt_tokens", prompt_bound)
    completion_bound = max(0, completion_upper) + slack - max(0, prompt - prompt_upper)
    completion = clamp("completion_tokens", completion_bound)
    for name in _INPUT_PARTS:
        if hasattr(usage, name):
            clamp(name, prompt)
    for name in _OUTPUT_PARTS:
        if hasattr(usage, name):
            clamp(name, completion)
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
