"""Receipt stamps for readings that carry no time of their own (policy `receipt`).

Each message gets its own stamp: its receipt time, pushed forward to one millisecond past
the previous stamp of the same meter when several arrive in the same millisecond (a
backlog drained in one socket read), so no two messages of a meter ever share a time and
none overwrites another. The point identity (series, time) then stays unique.

A QoS 1 redelivery (the MQTT DUP flag) of a message we stamped before must land on the
same stamp, or it would be stored twice at two times. The stamps given are journaled by
(topic, packet id, payload digest) — the broker redelivers with the original packet id
(MQTT-4.4.0-1) — in memory and in an append-only file that is fsynced before the readings
are written (`flush`), so a crash between the store write and the acknowledgement cannot
turn the redelivery into a second point. The journal keeps the newest `keep` entries.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
import zlib
from pathlib import Path
from typing import IO, Final

import orjson

__all__ = ["ReceiptStamper"]

_log = logging.getLogger(__name__)
_Key = tuple[str, int, int]
_DEFAULT_KEEP: Final = 100_000


class ReceiptStamper:
    """Usage: `ts = stamper.stamp("s1", "em-01", topic, mid, payload, recv_ms, dup=False)`,
    then `stamper.flush()` before the readings are written."""

    def __init__(self, path: Path | None = None, *, keep: int = _DEFAULT_KEEP) -> None:
        self.path = path
        self.keep = keep
        self._journal: collections.OrderedDict[_Key, int] = collections.OrderedDict()
        self._last: dict[tuple[str, str], int] = {}
        self._unsaved: list[tuple[str, int, int, int]] = []
        self._fh: IO[bytes] | None = None
        self._lines = 0
        self.reused = 0
        self._error_logged = -1e9

    def load(self) -> int:
        """Restore the journal a previous run left; returns the entries restored."""
        if self.path is None or not self.path.exists():
            return 0
        for line in self.path.read_bytes().splitlines():
            try:
                topic, mid, digest, ts = orjson.loads(line)
                self._remember((str(topic), int(mid), int(digest)), int(ts))
            except (ValueError, TypeError):
                continue  # a torn last line after a crash
        self._lines = len(self._journal)
        return len(self._journal)

    def stamp(
        self,
        site: str,
        meter: str,
        topic: str,
        mid: int,
        payload: bytes,
        recv_ms: int,
        *,
        dup: bool,
    ) -> int:
        key = (topic, mid, zlib.crc32(payload))
        if dup:
            earlier = self._journal.get(key)
            if earlier is not None:
                self.reused += 1
                return earlier
        device = (site, meter)
        ts = max(recv_ms, self._last.get(device, recv_ms - 1) + 1)
        self._last[device] = ts
        self._remember(key, ts)
        self._unsaved.append((*key, ts))
        return ts

    def _remember(self, key: _Key, ts: int) -> None:
        journal = self._journal
        journal[key] = ts
        journal.move_to_end(key)
        while len(journal) > self.keep:
            journal.popitem(last=False)

    def flush(self) -> None:
        """Make the stamps given so far durable (append + fsync); call before writing."""
        if not self._unsaved or self.path is None:
            self._unsaved.clear()
            return
        try:
            if self._lines > 2 * self.keep:
                self._compact()
                return
            fh = self._file()
            fh.write(b"".join(orjson.dumps(list(entry)) + b"\n" for entry in self._unsaved))
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:  # a full disk must not stop ingest: kept, retried next flush
            self.close()
            now = time.monotonic()
            if now - self._error_logged > 60:
                _log.error(
                    "receipt stamps %s not saved (%s): a redelivery after a crash may be"
                    " stored at a second time",
                    self.path,
                    exc.strerror or exc,
                )
                self._error_logged = now
            return
        self._lines += len(self._unsaved)
        self._unsaved.clear()

    def _file(self) -> IO[bytes]:
        if self._fh is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        return self._fh

    def _compact(self) -> None:
        """Rewrite the file with the entries still kept (temp file, fsync, rename)."""
        assert self.path is not None
        self.close()
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            for (topic, mid, digest), ts in self._journal.items():
                fh.write(orjson.dumps([topic, mid, digest, ts]) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._lines = len(self._journal)
        self._unsaved.clear()  # the rewritten file holds them

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):  # what matters was fsynced by `flush`
                fh.close()
