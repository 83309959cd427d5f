"""The on-disk spool: batches made durable (appended and fsynced) while the store is down,
replayed in order when it is back.

Layout: `spool/000000000001.seg`, … Each record is `<u32 length><u32 crc32>` then the batch
(its used series as JSON, then the four columns as raw little-endian arrays). A crash while
appending leaves a torn tail, which the checksum detects and `open()` cuts off. Replay
reads sealed segments oldest first and deletes each once the store has all of it; a crash
mid-segment replays that segment again, which is harmless (a point's identity is series +
time). The total size is bounded by a budget: past it `append` raises `SpoolFullError`
and the ingestor stops acknowledging, so the broker keeps the messages.

The disk may fill before the budget does (other files share it): a write that fails
(ENOSPC, a quota, a read-only remount) cuts its partial record off and raises
`SpoolFullError` too, so the node keeps running without acknowledging, and the next
`append` simply tries again once space has returned. `open()` never raises for a full
disk either: a restart on a full disk must not crash again.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import numpy as np
import orjson

from ecocluster.core.types import ReadingBatch, SeriesKey
from ecocluster.ingest.errors import SpoolFullError

__all__ = ["Spool"]

_log = logging.getLogger(__name__)
_HEADER: Final = struct.Struct("<II")
_SEGMENT_BYTES: Final = 8 * 1024 * 1024


def encode_batch(batch: ReadingBatch) -> bytes:
    used, local_idx = np.unique(batch.series_idx, return_inverse=True)
    keys = [list(batch.series[i]) for i in used.tolist()]
    head = orjson.dumps({"series": keys, "n": len(batch)})
    return b"".join(
        (
            struct.pack("<I", len(head)),
            head,
            local_idx.astype("<i8").tobytes(),
            batch.ts_ms.astype("<i8").tobytes(),
            batch.values.astype("<f8").tobytes(),
            batch.deltas.astype("<f8").tobytes(),
        )
    )


def decode_batch(body: bytes) -> ReadingBatch:
    (head_len,) = struct.unpack_from("<I", body)
    head = orjson.loads(body[4 : 4 + head_len])
    n = head["n"]
    arrays = np.frombuffer(body, "<i8", 2 * n, 4 + head_len)
    floats = np.frombuffer(body, "<f8", 2 * n, 4 + head_len + 16 * n)
    return ReadingBatch(
        series=tuple(SeriesKey(*k) for k in head["series"]),
        series_idx=arrays[:n].astype(np.int64),
        ts_ms=arrays[n:].astype(np.int64),
        values=floats[:n].astype(np.float64),
        deltas=floats[n:].astype(np.float64),
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Spool:
    """Usage: `spool.open()`; `spool.append(batch)` (durable on return);
    `for seg, batches in spool.sealed_segments(): …; spool.drop(seg)`."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.bytes = 0
        self.batches = 0
        self._active: int | None = None  # the active segment's file descriptor
        self._active_path: Path | None = None
        self._counts: dict[Path, int] = {}

    def open(self) -> None:
        """Scan what a previous run left, cutting off a torn tail."""
        self.bytes = self.batches = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _log.error("spool %s cannot be created (%s)", self.directory, exc.strerror or exc)
            return
        for path in self._segments():
            good_end, count = self._scan(path)
            if good_end < path.stat().st_size:
                _log.warning("spool %s: cutting a torn tail at byte %d", path.name, good_end)
                with path.open("r+b") as fh:
                    fh.truncate(good_end)
                    os.fsync(fh.fileno())
            if count == 0:
                path.unlink()
                continue
            self._counts[path] = count
            self.bytes += good_end
            self.batches += count
        if self.batches:
            _log.warning(
                "spool holds %d batches (%d bytes) from a previous run", self.batches, self.bytes
            )

    @property
    def empty(self) -> bool:
        return self.batches == 0

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.seg"))

    @staticmethod
    def _records(path: Path) -> Iterator[tuple[int, bytes]]:
        data = path.read_bytes()
        pos = 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            body = data[pos + _HEADER.size : pos + _HEADER.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                return
            pos += _HEADER.size + length
            yield pos, body

    def _scan(self, path: Path) -> tuple[int, int]:
        end = count = 0
        for end, _body in self._records(path):  # noqa: B007 - the last `end` is the answer
            count += 1
        return end, count

    def append(self, batch: ReadingBatch) -> None:
        """Write one batch and fsync it; raise `SpoolFullError` past the budget, or when the
        disk refuses the write (then nothing of the batch is left in the segment)."""
        body = encode_batch(batch)
        size = _HEADER.size + len(body)
        if self.bytes + size > self.max_bytes:
            raise SpoolFullError(
                f"spool full: {self.bytes} of {self.max_bytes} bytes used in {self.directory}"
            )
        start = -1
        try:
            fd = self._active_file(size)
            start = os.lseek(fd, 0, os.SEEK_END)
            _write_all(fd, _HEADER.pack(len(body), zlib.crc32(body)) + body)
            os.fsync(fd)
        except OSError as exc:
            self._cut(start)
            raise SpoolFullError(
                f"spool full: {self.directory} cannot be written ({exc.strerror or exc});"
                f" {self.bytes} bytes spooled"
            ) from exc
        assert self._active_path is not None
        self._counts[self._active_path] = self._counts.get(self._active_path, 0) + 1
        self.bytes += size
        self.batches += 1

    def _cut(self, length: int) -> None:
        """Drop a partial record after a failed write (shrinking needs no free space)."""
        if self._active is None or length < 0:
            return
        try:
            os.ftruncate(self._active, length)
        except OSError as exc:  # open() cuts it at the next start: the checksum fails
            _log.warning("spool: could not cut a partial record (%s)", exc.strerror or exc)

    def _active_file(self, size: int) -> int:
        if (
            self._active is not None
            and os.lseek(self._active, 0, os.SEEK_END) + size > _SEGMENT_BYTES
        ):
            self.seal()
        if self._active is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            segments = self._segments()
            seq = int(segments[-1].stem) + 1 if segments else 1
            path = self.directory / f"{seq:012d}.seg"
            self._active = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._active_path = path
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new file's name is durable too
            finally:
                os.close(dir_fd)
        return self._active

    def seal(self) -> None:
        """Close the segment being appended to; later appends start a new one."""
        if self._active is not None:
            os.close(self._active)
            self._active = None
            self._active_path = None

    def oldest(self) -> tuple[Path, list[ReadingBatch]] | None:
        """The oldest segment and its batches (sealing it first if it is the active one)."""
        segments = self._segments()
        if not segments:
            return None
        if segments[0] == self._active_path:
            self.seal()
        path = segments[0]
        return path, [decode_batch(body) for _end, body in self._records(path)]

    def drop(self, path: Path) -> None:
        """Forget a segment the store now holds entirely."""
        size = path.stat().st_size
        path.unlink()
        self.bytes -= size
        self.batches -= self._counts.pop(path, 0)

    def close(self) -> None:
        self.seal()
