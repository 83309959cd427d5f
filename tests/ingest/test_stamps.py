"""Receipt stamps: distinct per meter, the same again for a redelivered copy, journal bounded."""

from __future__ import annotations

from pathlib import Path

from ecocluster.ingest.stamps import ReceiptStamper


def test_stamps_are_distinct_per_meter_and_monotonic() -> None:
    s = ReceiptStamper()
    got = [s.stamp("s1", "a", "t/a", i, b"x", 1000, dup=False) for i in range(1, 4)]
    other = s.stamp("s1", "b", "t/b", 1, b"x", 1000, dup=False)
    later = s.stamp("s1", "a", "t/a", 9, b"x", 5000, dup=False)
    assert got == [1000, 1001, 1002] and other == 1000 and later == 5000


def test_only_a_dup_copy_reuses_its_stamp(tmp_path: Path) -> None:
    s = ReceiptStamper(tmp_path / "j.jsonl")
    first = s.stamp("s1", "a", "t/a", 7, b'{"m":{}}', 1000, dup=False)
    s.flush()
    assert s.stamp("s1", "a", "t/a", 7, b'{"m":{}}', 9000, dup=True) == first
    assert s.stamp("s1", "a", "t/a", 7, b'{"m":{}}', 9000, dup=False) == 9000  # id reused: new
    assert s.stamp("s1", "a", "t/a", 7, b'{"m":{1}}', 9000, dup=True) == 9001  # not the same
    s.close()


def test_the_journal_stays_bounded_on_disk_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    s = ReceiptStamper(path, keep=10)
    for i in range(200):
        s.stamp("s1", "a", "t/a", i, b"p", 1000 + i * 10, dup=False)
        s.flush()
    s.close()
    assert len(path.read_bytes().splitlines()) <= 2 * 10 + 1
    again = ReceiptStamper(path, keep=10)
    assert again.load() == 10
    assert again.stamp("s1", "a", "t/a", 199, b"p", 99_999, dup=True) == 1000 + 199 * 10
    path.write_bytes(path.read_bytes() + b'["torn')  # a crash mid-line
    assert ReceiptStamper(path, keep=10).load() == 10
