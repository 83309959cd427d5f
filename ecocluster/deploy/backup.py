"""`ecocluster backup` / `restore`: what a node keeps outside InfluxDB, as one archive.

    manifest = make_backup(settings.data_dir, Path("eco-2026-12-01.tar.gz"), settings)
    restore_backup(Path("eco-2026-12-01.tar.gz"), Path("/var/lib/ecocluster"))

The archive (gzip'd tar, mode 0600: it holds secrets) has `manifest.json` first, then the
items under `data/`, each with its size and SHA-256 in the manifest:

- the alert database (`alerts.sqlite`: alerts, audit trail, outbox) and the API tokens
  (`api-tokens.sqlite`), copied with SQLite's online backup API: a consistent snapshot
  even while the node writes (a plain copy of a WAL database can tear);
- rule state (`rules-state.json`), register baselines (`registers.json`), receipt stamps,
  the downsampling watermark: JSON their owners replace atomically, so a copy is whole;
- the MQTT secrets (`mqtt-credentials.json`, `mqtt-*.env`);
- the spool (`spool/`): readings not yet in the store (replaying them is idempotent).

Resuming from a restore neither re-sends nor double-counts: outbox rows already `sent`
stay sent (a row `sending` at backup time is retried once, the alert service's own
at-most-one-duplicate promise), and the register tracker merges its restored baselines with
the store's newer readings at start, so a reading booked after the backup is not booked
again. The alert database in PostgreSQL and the DuckDB store are not included (pg_dump;
DuckDB's `EXPORT DATABASE` or a copy with the node stopped): the manifest says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from ecocluster import __version__
from ecocluster.core.errors import FatalError
from ecocluster.core.settings import Settings

__all__ = ["BackupError", "make_backup", "restore_backup"]

FORMAT = "ecocluster-backup"
VERSION = 1
_DATA = "data"


class BackupError(FatalError):
    """The archive cannot be made or restored (unreadable, tampered, target not empty)."""


@dataclass(frozen=True)
class _Item:
    pattern: str
    kind: str  # "sqlite" | "file" | "dir"
    what: str
    secret: bool = False


ITEMS: tuple[_Item, ...] = (
    _Item("alerts.sqlite", "sqlite", "alert database: alerts, audit trail, outbox"),
    _Item("api-tokens.sqlite", "sqlite", "API tokens", secret=True),
    _Item("rules-state*.json", "file", "rule engine pending/firing state (one per rules worker)"),
    _Item("registers.json", "file", "register baselines (consumption deltas)"),
    _Item("receipt-stamps.jsonl", "file", "receipt times of readings without one"),
    _Item("influx-downsample.json", "file", "downsampling watermark"),
    _Item("mqtt-credentials.json", "file", "device and service MQTT secrets", secret=True),
    _Item("mqtt-*.env", "file", "service MQTT logins", secret=True),
    _Item("spool", "dir", "readings not yet in the store"),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sqlite_snapshot(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's online backup API, as one self-contained file."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # no -wal/-shm beside the copy
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{source}: SQLite backup failed ({exc})") from None
    finally:
        src.close()


def _alert_db(settings: Settings | None, data_dir: Path) -> tuple[Path | None, str | None]:
    """The SQLite alert database to copy, or why it is not included."""
    if settings is None or settings.alert_db_url is None:
        return data_dir / "alerts.sqlite", None
    url = settings.alert_db_url.get_secret_value()
    if url.startswith("sqlite"):
        path = unquote(urlsplit(url).path)
        return Path(path[1:] if path.startswith("//") else path), None
    return None, "alert database in PostgreSQL: back it up with pg_dump"


def _collect(
    data_dir: Path, stage: Path, settings: Settings | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Copy every present item into `stage/data`; returns manifest entries and notes."""
    entries: list[dict[str, Any]] = []
    alert_path, alert_note = _alert_db(settings, data_dir)
    notes = [alert_note] if alert_note else []
    notes.append("readings: InfluxDB (or the DuckDB file ecocluster.duckdb) is not included")
    for item in ITEMS:
        if item.pattern == "alerts.sqlite":
            sources = [alert_path] if alert_path is not None and alert_path.exists() else []
        else:
            sources = _sources(data_dir, item.pattern)
        for source in sources:
            if item.pattern == "alerts.sqlite":
                target = stage / _DATA / "alerts.sqlite"
            else:
                target = stage / _DATA / source.relative_to(data_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
            if item.kind == "sqlite":
                sqlite_snapshot(source, target)
            elif item.kind == "dir":
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
            entries.extend(_entries(target, stage, item))
    return entries, notes


def _sources(data_dir: Path, pattern: str) -> list[Path]:
    """The item in the data dir and in each partitioned worker's folder (`p0of3/…`: ingest
    workers started with `--partition` keep their spool and registers there)."""
    return sorted(data_dir.glob(pattern)) + sorted(data_dir.glob(f"p*of*/{pattern}"))


def _entries(target: Path, stage: Path, item: _Item) -> list[dict[str, Any]]:
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    return [
        {
            "name": p.relative_to(stage / _DATA).as_posix(),
            "kind": item.kind,
            "what": item.what,
            "secret": item.secret,
            "bytes": p.stat().st_size,
            "sha256": _sha256(p),
        }
        for p in files
    ]


def make_backup(data_dir: Path, out: Path, settings: Settings | None = None) -> dict[str, Any]:
    """Write the archive to `out` (atomically, mode 0600); returns its manifest."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir}: no such data directory")
    with tempfile.TemporaryDirectory(prefix="ecocluster-backup-") as tmp:
        stage = Path(tmp)
        (stage / _DATA).mkdir()
        entries, notes = _collect(data_dir, stage, settings)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "ecocluster": __version__,
            "created_ms": time.time_ns() // 1_000_000,
            "data_dir": str(data_dir.absolute()),
            "items": entries,
            "not_included": notes,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                body = json.dumps(manifest, indent=2).encode()
                info = tarfile.TarInfo("manifest.json")
                info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
                tar.addfile(info, io.BytesIO(body))
                for entry in entries:
                    tar.add(stage / _DATA / entry["name"], f"{_DATA}/{entry['name']}")
            os.replace(partial, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return manifest


def read_manifest(archive: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            manifest = json.loads(member.read())
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise BackupError(f"{archive}: not an ecocluster backup ({exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupError(f"{archive}: unknown backup format {manifest.get('format')!r}")
    return manifest


def restore_backup(archive: Path, data_dir: Path, *, overwrite: bool = False) -> list[str]:
    """Restore into `data_dir` (made if missing). Refuses to replace files already there
    unless `overwrite`; every file's checksum is verified before anything is moved."""
    manifest = read_manifest(archive)
    names = [str(entry["name"]) for entry in manifest["items"]]
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise BackupError(f"{archive}: unsafe path {name!r} in the manifest")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    tops = sorted({PurePosixPath(n).parts[0] for n in names})
    present = [top for top in tops if (data_dir / top).exists()]
    if present and not overwrite:
        raise BackupError(
            f"{data_dir} already holds {', '.join(present)}: restore into a fresh data dir"
            " (or pass --force, with the node stopped)"
        )
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=data_dir) as tmp:
        stage = Path(tmp)
        _extract(archive, stage)
        for entry in manifest["items"]:
            got = stage / _DATA / entry["name"]
            if not got.is_file() or _sha256(got) != entry["sha256"]:
                raise BackupError(f"{archive}: {entry['name']} is missing or corrupt")
            if entry.get("secret"):
                got.chmod(0o600)
        for top in tops:
            target = data_dir / top
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(stage / _DATA / top, target)
    return tops


def _extract(archive: Path, stage: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(stage, filter="data")  # no links out, no absolute paths
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive}: cannot extract ({exc})") from None
