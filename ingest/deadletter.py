"""The dead-letter log: every rejected payload or reading, in a bounded JSONL file.

One line per rejected *message*: receipt time, topic, the main reason code, a readable
message, the field, how many readings it stands for, the count per reason, the first
`MAX_ROWS` rejected readings with their own reason (the rest only counted), and the
payload (truncated). A 64 KB payload holding 32,700 bad readings is one line of a few KB,
so one message cannot evict the evidence of every other. The file rotates at half the
budget (`dead-letters.jsonl` → `dead-letters.1.jsonl`), so the two never exceed
`max_bytes`. Counters per reason are exact (they count readings), and a summary is logged
at most once per interval: a flood of bad input cannot flood the logs.

The log never stops the node: a file removed or renamed underneath (an operator, a log
rotation) is noticed at the next flush and a new one started; a write that fails (disk
full) is logged once per interval and counted in `write_errors`, and the entry is lost,
not the node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Final, Protocol

import orjson

__all__ = ["MAX_ROWS", "DeadLetterLog", "record_rejections"]

_log = logging.getLogger(__name__)
PAYLOAD_KEEP: Final = 1024
#: Rejected readings of one message listed one by one; the rest are only counted.
MAX_ROWS: Final = 20
_ERROR_LOG_INTERVAL_S: Final = 60.0


class _Rejection(Protocol):
    """What `record_rejections` needs of a rejection (`pipeline.Rejected`)."""

    @property
    def message(self) -> Any: ...  # the Inbound: .topic, .payload, .recv_ms
    @property
    def reason(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def msg_idx(self) -> int: ...


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
        self.write_errors = 0
        self._since_summary: Counter[str] = Counter()
        self._last_summary = time.monotonic() - summary_interval_s  # the first burst logs at once
        self._last_error_log = 0.0
        self._on_record = on_record
        self._summary = summary
        self._fh: IO[bytes] | None = None
        self._size = 0

    # -- writing ----------------------------------------------------------------------------
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
        rows: Sequence[dict[str, object]] = (),
        reasons: dict[str, int] | None = None,
    ) -> None:
        """Log one rejected message (`count` readings when it stands for several; `reasons`
        their count per reason when they differ; `rows` some of them one by one)."""
        entry: dict[str, object] = {
            "recv_ms": recv_ms if recv_ms is not None else int(time.time() * 1000),
            "topic": topic,
            "reason": reason,
            "message": message,
            "field": field,
            "count": count,
            "payload_bytes": len(payload),
            "payload": payload[:PAYLOAD_KEEP].decode("utf-8", "replace"),
        }
        if reasons is not None and len(reasons) > 1:
            entry["reasons"] = reasons
        if rows:
            entry["rows"] = list(rows)
            entry["rows_omitted"] = max(0, count - sum(int(r.get("count", 1)) for r in rows))  # type: ignore[call-overload]
        self._write(_dumps(entry) + b"\n")
        for name, n in (reasons or {reason: count}).items():
            self.counts[name] += n
            self._since_summary[name] += n
            if self._on_record is not None:
                self._on_record(name, n)

    def _write(self, line: bytes) -> None:
        try:
            fh = self._open()
            if self._size + len(line) > self.max_bytes // 2:
                fh = self._rotate()
            fh.write(line)
            self._size += len(line)
        except OSError as exc:
            self._write_failed(exc)

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
            self._size = self._fh.tell()
        return self._fh

    def _rotate(self) -> IO[bytes]:
        self._close_file()
        with contextlib.suppress(FileNotFoundError):  # removed underneath: nothing to keep
            os.replace(self.path, self.backup)
        return self._open()

    def _close_file(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as exc:  # buffered lines that cannot be written (disk full)
                self._write_failed(exc)
            self._fh = None

    def _write_failed(self, exc: OSError) -> None:
        self.write_errors += 1
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL_S:
            _log.error(
                "dead-letter log %s: cannot write (%s); rejections are still counted",
                self.path,
                exc.strerror or exc,
            )
            self._last_error_log = now
        self._close_file_quietly()

    def _close_file_quietly(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()

    def _replaced_underneath(self) -> bool:
        """The file we write was removed or renamed (an operator, logrotate)."""
        if self._fh is None:
            return False
        try:
            return os.stat(self.path).st_ino != os.fstat(self._fh.fileno()).st_ino
        except OSError:
            return True

    def flush(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            except OSError as exc:
                self._write_failed(exc)
            if self._replaced_underneath():
                _log.warning(
                    "dead-letter log %s was moved or removed; starting a new one", self.path
                )
                self._close_file()
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
        self._close_file()

    def entries(self) -> list[dict[str, object]]:
        """Every entry still on disk, oldest first (for tests and the CLI)."""
        self.flush()
        out: list[dict[str, object]] = []
        for p in (self.backup, self.path):
            if p.exists():
                for line in p.read_bytes().splitlines():
                    try:
                        out.append(orjson.loads(line))
                    except orjson.JSONDecodeError:
                        continue  # a line torn by a full disk or a crash
        return out


def record_rejections(log: DeadLetterLog, rejected: Iterable[_Rejection]) -> int:
    """One dead-letter entry per message, however many of its readings were rejected:
    the main reason, the count per reason, and the first `MAX_ROWS` readings in detail.
    Returns the entries written."""
    by_message: dict[int, list[_Rejection]] = {}
    for r in rejected:
        by_message.setdefault(r.msg_idx if r.msg_idx >= 0 else id(r), []).append(r)
    for group in by_message.values():
        first = group[0]
        reasons: Counter[str] = Counter()
        for r in group:
            reasons[str(r.reason)] += r.count
        main = reasons.most_common(1)[0][0]
        text = first.text if len(group) == 1 else f"{first.text} (and {len(group) - 1} more)"
        rows = (
            [
                {"reason": str(r.reason), "field": r.field, "message": r.text, "count": r.count}
                for r in group[:MAX_ROWS]
            ]
            if len(group) > 1
            else ()
        )
        m = first.message
        log.record(
            m.topic,
            main,
            text,
            payload=m.payload,
            field=first.field,
            count=sum(reasons.values()),
            recv_ms=m.recv_ms,
            rows=rows,
            reasons=dict(reasons),
        )
    return len(by_message)


def _dumps(entry: dict[str, object]) -> bytes:
    try:
        return orjson.dumps(entry)
    except TypeError:  # a lone surrogate in some text: escape it rather than fail
        return orjson.dumps(_escaped(entry))


def _escaped(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value
