"""Logging set up once for the whole process: plain text to a terminal, JSON lines on request.

Log messages carry untrusted text (topics, payload field names, file keys): both formats
escape control and bidi characters (`ecocluster.core.text.printable`), so a crafted topic
can neither forge a log line with a newline nor drive the reader's terminal with ESC.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from ecocluster.core.text import printable

__all__ = ["JsonLinesFormatter", "TextFormatter", "setup_logging"]

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})))


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": printable(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[printable(key)] = _escaped(value)
        if record.exc_info:
            entry["exc"] = printable(self.formatException(record.exc_info), keep_newlines=True)
        return orjson.dumps(entry, default=lambda v: printable(str(v))).decode()


def _escaped(value: Any) -> Any:
    """`value` with every string in it escaped (an `extra=` may nest labels or lists)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL logger: message`, the message escaped; a traceback keeps its line
    breaks (it is multi-line by design) but not the control characters on its lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return printable(super().formatException(ei), keep_newlines=True)


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, like logging's last
    resort: a test runner or CLI runner may swap and close the stream it started with."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger; calling it again replaces the previous handler."""
    handler = _CurrentStderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_ecocluster", False):
            root.removeHandler(old)
    handler._ecocluster = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
