"""E-mail backends for when no real mail server is configured, neither of which ever writes
a link (password resets and invitations carry one-time secrets in theirs) to the logs.

- `UnsentEmailBackend`: the default with DEBUG off and no `EMAIL_URL`: nothing is sent; one
  warning line per message says so (recipients count and subject only).
- `LinkRedactingConsoleBackend`: what a console backend becomes with DEBUG off when
  `EMAIL_CONSOLE_ALLOWED=true`: the message is printed with every link removed.

With DEBUG on (`make run`), the plain console backend prints links: that is how a developer
follows them.
"""

from __future__ import annotations

import copy
import logging
import re

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.console import EmailBackend as ConsoleBackend

logger = logging.getLogger("tokenforge.mail")

LINK = re.compile(r"(?:[a-z][a-z0-9+.-]*://|(?<![^\s(<\"'])/)\S+", re.IGNORECASE)
REDACTED = "[link removed: e-mail goes to the console]"


def links_redact(text: str) -> str:
    return LINK.sub(REDACTED, text)


class UnsentEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            logger.warning(
                "E-mail not sent (EMAIL_URL is not set): %d recipient(s), subject %r",
                len(message.recipients()),
                message.subject,
            )
        return 0


class LinkRedactingConsoleBackend(ConsoleBackend):
    def write_message(self, message):
        safe = copy.copy(message)
        safe.body = links_redact(str(message.body))
        safe.alternatives = [
            type(alt)(links_redact(str(alt[0])), alt[1]) if isinstance(alt, tuple) else alt
            for alt in getattr(message, "alternatives", [])
        ]
        return super().write_message(safe)
