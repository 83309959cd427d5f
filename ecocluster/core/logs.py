"""Logging set up once for the whole process: plain text to a terminal, JSON lines on request."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})))


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


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
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_ecocluster", False):
            root.removeHandler(old)
    handler._ecocluster = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
