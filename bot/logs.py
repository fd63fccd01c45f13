"""Logging for the bot's processes: one format, the level from LOG_LEVEL, no signed URLs.

Amazon's report documents are fetched from pre-signed URLs whose query strings are the
credential (`X-Amz-Signature`, `X-Amz-Credential`, ...), and OAuth callbacks carry codes and
states in theirs. urllib3 logs every request's path and query at DEBUG, and an HTTP error's text
names its URL at any level, so every query string is cut from what is written, whoever logs it.
"""

from __future__ import annotations

import logging
import re

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"

# A URL or an absolute path (urllib3 logs the path alone), then its query string.
_QUERY = re.compile(
    r"""((?:\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#"'<>]*|(?<![\w.])/[^\s?#"'<>]*)\?)[^\s#"'<>]+"""
)
# Slack's response_url and webhooks carry their credential in the path instead.
_SLACK_HOOK = re.compile(r"(https://hooks\.slack\.com/)[^\s\"'<>,;)]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the query string of every URL and path, and the path of Slack's response
    and webhook URLs, replaced by [redacted]."""
    return _SLACK_HOOK.sub(rf"\1{REDACTED}", _QUERY.sub(rf"\1{REDACTED}", text))


class RedactQueries(logging.Filter):
    """Rewrites a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it as logging does
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_REDACT = RedactQueries()


def configure_logging(level: str = "INFO") -> None:
    """The bot's processes (the CLI, the server and its worker) log alike to standard error."""
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger().setLevel(level)  # basicConfig leaves an already configured root alone
    for handler in logging.getLogger().handlers:
        # On the handler: a filter on a logger sees only what is logged on that logger itself.
        handler.addFilter(_REDACT)
