"""Logging: one line per record, and secrets scrubbed as a last line of defence.

The code never logs a token or key on purpose; the filter makes sure a library
that echoes a header or URL cannot leak one either.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from pydantic import SecretStr

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces every known secret value in a record's final message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_text is None:
            formatted = logging.Formatter().formatException(record.exc_info)
            for secret in self._secrets:
                formatted = formatted.replace(secret, "[redacted]")
            record.exc_text = formatted
        return True


def configure_logging(level: str = "INFO", secrets: Iterable[SecretStr | None] = ()) -> None:
    values = [s.get_secret_value() for s in secrets if s is not None]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactSecrets(values))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # discord.py's gateway chatter at INFO is noise for operators.
    logging.getLogger("discord.gateway").setLevel(max(logging.getLevelName(level), logging.WARNING))
