"""Backup and restore into a fresh data dir: nothing double-counted, nothing re-sent."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import load_settings
from ecocluster.core.types import ReadingBatch
from ecocluster.deploy.backup import BackupError, make_backup, restore_backup
from ecocluster.deploy.credentials import CredentialStore, resolve_accounts
from ecocluster.deploy.passwd import mosquitto_hash
from ecocluster.ingest.registers import RegisterTracker
from ecocluster.rules.snapshot import load_snapshot, save_snapshot
from tests.deploy.conftest import CLUSTER, invoke


@pytest.fixture
def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER.format(hashed=mosquitto_hash("x")))
    return load_cluster(path)


def _energy(cluster, rows: list[tuple[int, float]]) -> ReadingBatch:  # type: ignore[no-untyped-def]
    series = cluster.series
    idx = next(
        i for i, k in enumerate(series)
        if (k.site, k.meter, k.quantity) == ("s1", "em-01", "energy_kwh")
    )  # fmt: skip
    n = len(rows)
    return ReadingBatch(
        series=series,
        series_idx=np.full(n, idx, np.int64),
        ts_ms=np.array([ts for ts, _ in rows], np.int64),
        values=np.array([v for _, v in rows], np.float64),
        deltas=np.full(n, np.nan),
    )


def _booked(tracker: RegisterTracker, batch: ReadingBatch) -> list[float]:
    out, _flags = tracker.apply(batch)
    return [round(float(d), 6) for d in out.deltas]


def test_restored_registers_and_rule_state_resume_without_double_counting(
    cluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    tracker = RegisterTracker(cluster, old / "registers.json")
    assert _booked(tracker, _energy(cluster, [(60_000, 100.0), (120_000, 101.0)]))[1] == 1.0
    tracker.save()
    rule_state = {"version": 1, "pending": {"power-overload/s1": 1_700_000_000_000}}
    save_snapshot(old / "rules-state.json", rule_state)
    archive = tmp_path / "backup.tar.gz"
    make_backup(old, archive)
    assert archive.stat().st_mode & 0o777 == 0o600
    assert sorted(restore_backup(archive, new)) == ["registers.json", "rules-state.json"]

    resumed = RegisterTracker(cluster, new / "registers.json")
    assert resumed.load() == 1
    # the last reading before the backup redelivered (QoS 1), then the next one
    deltas = _booked(resumed, _energy(cluster, [(120_000, 101.0), (180_000, 101.5)]))
    assert np.isnan(deltas[0]) and deltas[1] == 0.5  # 100 → 101.5 booked as 1.0 + 0.5
    assert load_snapshot(new / "rules-state.json") == rule_state

    # a reading the old node booked after the backup is in the store: at start the tracker
    # adopts the store's newer value, so it is not booked a second time
    late = RegisterTracker(cluster, new / "registers.json")
    late.load()
    assert late.merge_latest(_energy(cluster, [(240_000, 103.0)])) == 1
    assert _booked(late, _energy(cluster, [(300_000, 103.25)])) == [0.25]


async def test_a_restored_alert_database_does_not_send_again(tmp_path: Path) -> None:
    db_mod = pytest.importorskip("ecocluster.alerts.store.db")
    schema = pytest.importorskip("ecocluster.alerts.store.schema")
    outbox_mod = pytest.importorskip("ecocluster.alerts.outbox")
    old, new = tmp_path / "old", tmp_path / "new"
    db = db_mod.AlertDatabase.open(f"sqlite:///{old / 'alerts.sqlite'}")

    def row(key: str, status: str, next_ms: int, sent_ms: int | None) -> dict[str, object]:
        return {
            "idem_key": key, "kind": "notify", "contact_id": "rossi", "channel": 0,
            "alert_ids": "[1]", "language": "it", "subject": "s", "body": "b", "sms": "sms",
            "status": status, "attempts": 1, "total_attempts": 1, "next_ms": next_ms,
            "created_ms": 1_000, "sent_ms": sent_ms,
        }  # fmt: skip

    with db.engine.begin() as conn:
        conn.execute(
            schema.outbox.insert(),
            [row("a", "sent", 1_000, 2_000), row("b", "pending", 5_000, None)],
        )
    # a writer mid-transaction while the backup runs: its row is not in the snapshot
    writer = sqlite3.connect(old / "alerts.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO outbox (idem_key, kind, contact_id, channel, alert_ids, language, subject,"
        " body, sms, status, attempts, total_attempts, next_ms, created_ms)"
        " VALUES ('c', 'notify', 'rossi', 0, '[]', 'it', 's', 'b', 'x', 'pending', 0, 0, 1, 1)"
    )
    archive = tmp_path / "backup.tar.gz"
    try:
        make_backup(old, archive)
    finally:
        writer.execute("COMMIT")
        writer.close()
        db.close()
    restore_backup(archive, new)
    restored = db_mod.AlertDatabase.open(f"sqlite:///{new / 'alerts.sqlite'}")
    try:
        with restored.engine.connect() as conn:
            rows = conn.execute(schema.outbox.select().order_by(schema.outbox.c.id)).all()
        assert [(r.idem_key, r.status) for r in rows] == [("a", "sent"), ("b", "pending")]
        ctx = SimpleNamespace(settings=load_settings())
        dispatcher = outbox_mod.Dispatcher(restored, ctx)
        try:
            assert await dispatcher.next_due_ms() == 5_000  # only the unsent row is due
        finally:
            dispatcher.close()
    finally:
        restored.close()


def test_archive_is_verified_and_never_overwrites_by_accident(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    resolve_accounts(cluster, CredentialStore.open(data))
    (data / "spool").mkdir()
    (data / "spool" / "00000001.seg").write_bytes(b"pending readings")
    (data / "dead-letters.jsonl").write_text("{}\n")  # a log, not state: left out
    archive = tmp_path / "b.tar.gz"
    out = invoke("backup", "--out", str(archive), "--data-dir", str(data))
    assert "mqtt-credentials.json" in out and "spool" in out and "PostgreSQL" not in out
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names[0] == "manifest.json" and "data/dead-letters.jsonl" not in names
    assert {e["name"] for e in manifest["items"]} == {
        "mqtt-credentials.json", "spool/00000001.seg",
    }  # fmt: skip
    fresh = tmp_path / "fresh"
    invoke("restore", str(archive), "--data-dir", str(fresh))
    restored = fresh / "mqtt-credentials.json"
    assert restored.read_bytes() == (data / "mqtt-credentials.json").read_bytes()
    assert restored.stat().st_mode & 0o777 == 0o600
    assert (fresh / "spool" / "00000001.seg").read_bytes() == b"pending readings"
    with pytest.raises(BackupError, match=r"already holds mqtt-credentials\.json"):
        restore_backup(archive, fresh)

    tampered = tmp_path / "t.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            body = src.extractfile(member)
            content = body.read() if body else b""
            if member.name.endswith(".seg"):
                content = b"forged readings!"
            member.size = len(content)
            dst.addfile(member, io.BytesIO(content))
    with pytest.raises(BackupError, match=r"spool/00000001\.seg is missing or corrupt"):
        restore_backup(tampered, tmp_path / "other")
    assert not (tmp_path / "other" / "spool").exists()


def test_partitioned_workers_state_is_backed_up_and_restored(tmp_path: Path) -> None:
    """Workers started with `--partition k/n` keep their spool and registers in `p{k}of{n}/`
    and their rule state in `rules-state-p{k}of{n}.json`: all of it is state to keep."""
    data = tmp_path / "data"
    for share in ("p0of2", "p1of2"):
        (data / share / "spool").mkdir(parents=True)
        (data / share / "spool" / "00000001.seg").write_bytes(f"{share} pending".encode())
        (data / share / "registers.json").write_text(f'{{"{share}": 1}}')
        (data / f"rules-state-{share}.json").write_text(f'{{"rules": "{share}"}}')
    (data / "p0of2" / "dead-letters.jsonl").write_text("{}\n")  # a log: left out
    manifest = make_backup(data, tmp_path / "b.tar.gz")
    names = {e["name"] for e in manifest["items"]}
    assert names == {
        "rules-state-p0of2.json", "rules-state-p1of2.json",
        "p0of2/registers.json", "p1of2/registers.json",
        "p0of2/spool/00000001.seg", "p1of2/spool/00000001.seg",
    }  # fmt: skip
    fresh = tmp_path / "fresh"
    restore_backup(tmp_path / "b.tar.gz", fresh)
    assert (fresh / "p1of2" / "spool" / "00000001.seg").read_bytes() == b"p1of2 pending"
    assert (fresh / "p0of2" / "registers.json").read_text() == '{"p0of2": 1}'
    assert (fresh / "rules-state-p1of2.json").exists()
    assert not (fresh / "p0of2" / "dead-letters.jsonl").exists()
