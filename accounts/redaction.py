"""Redact anything that looks like a credential from text we store or show.

Upstreams echo secrets in their error text (`Incorrect API key provided: sk-...`, a reflected
`Authorization` header), and that text used to travel to disable reasons, audit events,
usage records, client answers and logs. Every such path calls `redact_secrets` first; the
logging filter below applies it to every log line as a last line of defence.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

# Order matters: specific key shapes first, then header-like and assignment-like forms.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # `Authorization: Bearer xyz`, `"authorization": "Basic xyz"`, `Bearer xyz` on its own.
    (
        re.compile(
            r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?:bearer|basic|token)?\s*[^\s\"',;}]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=*\-]{4,}"), r"\1" + REDACTED),
    # `x-api-key: xyz`, `x-goog-api-key=xyz`, `"api_key": "xyz"`, `apikey=xyz`.
    (
        re.compile(
            r"(?i)\b((?:x-(?:goog-)?api-key|api[-_]?key|access[-_]?token|secret|password|passwd)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+"
        ),
        r"\1" + REDACTED,
    ),
    # `key=...` / `token=...` (query strings) followed by a long hex/base64 value.
    (
        re.compile(r"(?i)\b((?:key|token|sig|signature)\s*[=:]\s*[\"']?)[A-Za-z0-9+/_\-.=]{16,}"),
        r"\1" + REDACTED,
    ),
    # Provider key shapes (OpenAI incl. masked `sk-ab***yz`, Anthropic, ours, Google, Stripe).
    (re.compile(r"\bsk-ant-[A-Za-z0-9_\-*.]{4,}"), "sk-ant-" + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_\-*.]{6,}"), "sk-" + REDACTED),
    (re.compile(r"\btf-[A-Za-z0-9_\-]{12,}"), "tf-" + REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{16,}"), "AIza" + REDACTED),
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,}"), REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{8,}"), REDACTED),
    (re.compile(r"\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{16,}"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), REDACTED),
    # Long bare hex (>= 32) or base64-ish runs (>= 40 with a digit) are key material too.
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), REDACTED),
    (
        re.compile(r"(?<![A-Za-z0-9+/_\-])(?=[A-Za-z0-9+/_\-]*\d)[A-Za-z0-9+/_\-]{40,}={0,2}"),
        REDACTED,
    ),
)


def redact_secrets(text: str) -> str:
    """`text` with every key-like substring replaced by `[redacted]` (keeps a short hint of
    the kind, e.g. `sk-[redacted]`, so an operator still knows what was echoed)."""
    if not text:
        return text
    if not isinstance(text, str):
        text = str(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter: redacts the formatted message (and exception text) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
            return True
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        return True
