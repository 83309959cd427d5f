"""The dead-letter log: every rejected payload or reading, in a bounded JSONL file.

One line per rejection: receipt time, topic, reason code, a readable message, the field
and the payload (truncated). The file rotates at half the budget (`dead-letters.jsonl` →
`dead-letters.1.jsonl`), so the two never exceed `max_bytes`. Counters per reason are kept
for metrics, and a summary is logged at most once per interval: a flood of bad input
cannot flood the logs.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

import orjson

__all__ = ["DeadLetterLog"]

_log = logging.getLogger(__name__)
PAYLOAD_KEEP: Final = 1024


class DeadLetterLog:
    """Append rejections; `flush()` before acknowledging the messages they came from.

    Usage: `dl.record(topic, reason, message, payload=raw, field="m.power_w")`.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        summary_interval_s: float = 60.0,
        on_record: Callable[[str, int], None] | None = None,
        summary: str = "rejected %d readings or payloads (%s); see %s",
    ) -> None:
        self.path = path
        self.backup = path.with_name(path.stem + ".1" + path.suffix)
        self.max_bytes = max_bytes
        self.summary_interval_s = summary_interval_s
        self.counts: Counter[str] = Counter()
        self._since_summary: Counter[str] = Counter()
        self._last_summary = time.monotonic() - summary_interval_s  # the first burst logs at once
        self._on_record = on_record
        self._summary = summary
        self._fh: IO[bytes] | None = None
        self._size = 0

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
            self._size = self._fh.tell()
        return self._fh

    def record(
        self,
        topic: str,
        reason: str,
        message: str,
        *,
        payload: bytes = b"",
        field: str = "",
        count: int = 1,
        recv_ms: int | None = None,
    ) -> None:
        """Log one rejection (`count` readings when one entry stands for several)."""
        entry = {
            "recv_ms": recv_ms if recv_ms is not None else int(time.time() * 1000),
            "topic": topic,
            "reason": reason,
            "message": message,
            "field": field,
            "count": count,
            "payload_bytes": len(payload),
            "payload": payload[:PAYLOAD_KEEP].decode("utf-8", "replace"),
        }
        line = orjson.dumps(entry) + b"\n"
        fh = self._open()
        if self._size + len(line) > self.max_bytes // 2:
            fh = self._rotate()
        fh.write(line)
        self._size += len(line)
        self.counts[reason] += count
        self._since_summary[reason] += count
        if self._on_record is not None:
            self._on_record(reason, count)

    def _rotate(self) -> IO[bytes]:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        os.replace(self.path, self.backup)
        return self._open()

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
        self.maybe_log_summary()

    def maybe_log_summary(self, *, force: bool = False) -> None:
        """One warning line with the counts since the last one, at most once per interval."""
        now = time.monotonic()
        if not self._since_summary:
            return
        if not force and now - self._last_summary < self.summary_interval_s:
            return
        total = sum(self._since_summary.values())
        parts = ", ".join(f"{reason} {n}" for reason, n in self._since_summary.most_common())
        _log.warning(self._summary, total, parts, self.path)
        self._since_summary.clear()
        self._last_summary = now

    def close(self) -> None:
        self.maybe_log_summary(force=True)
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def entries(self) -> list[dict[str, object]]:
        """Every entry still on disk, oldest first (for tests and the CLI)."""
        self.flush()
        out: list[dict[str, object]] = []
        for p in (self.backup, self.path):
            if p.exists():
                out.extend(orjson.loads(line) for line in p.read_bytes().splitlines() if line)
        return out
