"""Rate limits in one round trip (issue 20): `admit` checks RPM, TPM and, for a stream, the
concurrent-stream slot in one script, and a refused request consumes nothing."""

from __future__ import annotations

import asyncio
import random

from routing import ratelimit


def test_a_stream_refused_for_its_slot_counts_no_request_and_the_slot_is_taken_by_admit():
    key_id = random.randint(10**8, 10**9)
    limits = {"key_id": key_id, "rpm_limit": 3, "tpm_limit": None, "tokens": 10}

    async def run():
        first = await ratelimit.admit(**limits, stream_limit=1, request_id="s1")
        refused = await ratelimit.admit(**limits, stream_limit=1, request_id="s2")
        plain = [await ratelimit.admit(**limits) for _ in range(3)]
        await ratelimit.stream_release(key_id=key_id, limit=1, request_id="s1")
        again = await ratelimit.admit(
            key_id=key_id, rpm_limit=None, tpm_limit=None, tokens=0, stream_limit=1, request_id="s3"
        )
        await ratelimit.stream_release(key_id=key_id, limit=1, request_id="s3")
        return first, refused, plain, again

    first, refused, plain, again = asyncio.run(run())
    assert first.allowed
    assert (refused.allowed, refused.limit, refused.retry_after) == (False, "streams", 1)
    # The refused stream took no RPM count: two more requests fit in the limit of 3.
    assert [d.allowed for d in plain] == [True, True, False] and plain[2].limit == "rpm"
    assert again.allowed  # the released slot is free again
