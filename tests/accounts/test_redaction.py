"""`redact_secrets` removes every key shape upstreams echo, and leaves ordinary text alone."""

from __future__ import annotations

import logging

import pytest

from accounts.redaction import RedactingFilter, redact_secrets

SECRETS = [
    "sk-upstream-relay-a-0123456789",
    "sk-proj-AbCdEf0123456789AbCdEf0123456789",
    "sk-ant-api03-AbCdEf0123456789-xyz",
    "tf-AbCdEf0123456789AbCdEf0123456789AbCdEf01",
    "AIzaSyA1234567890abcdefghijklmnopqrstu",
    "sk_live_0123456789abcdefABCDEF",
    "whsec_0123456789abcdefABCDEF",
    "0123456789abcdef0123456789abcdef0123",
]

CARRIERS = [
    "Incorrect API key provided: {s}. You can find your API key at https://x/account.",
    "Authorization: Bearer {s}",
    '{{"headers": {{"authorization": "Bearer {s}"}}}}',
    "x-api-key: {s}",
    "GET /v1beta/models?key={s}&alt=sse",
    "token={s}",
    "api_key={s}",
]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("carrier", CARRIERS)
def test_every_key_shape_in_every_carrier_is_redacted(secret, carrier):
    text = carrier.format(s=secret)
    redacted = redact_secrets(text)
    assert secret not in redacted
    assert secret[-12:] not in redacted
    assert "[redacted]" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "mock 500",
        "The model gpt-4o-mini-2024-07-18 is overloaded; retry later.",
        "req_0123456789abcdef01234567 failed after 3 attempts",
        "max_tokens: an integer between 1 and 1000000 is required.",
        "Your request was flagged by our content policy.",
    ],
)
def test_ordinary_error_text_is_kept(text):
    assert redact_secrets(text) == text


def test_the_logging_filter_redacts_messages_and_arguments():
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "upstream said %s", ("Bearer sk-abcdef0123456789",), None
    )
    assert RedactingFilter().filter(record)
    assert "sk-abcdef0123456789" not in record.getMessage()
    assert "[redacted]" in record.getMessage()
