"""The alert process SIGKILLed mid-dispatch: restarted, it resumes; nothing is lost and at
most one notification is sent twice (the one in flight, with one sending worker)."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.services import HttpReceiver


def _spawn(cluster_path, db_url, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONSAFEPATH": "1", "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.alerts.alert_worker", str(cluster_path), db_url, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


@pytest.mark.slow
def test_sigkill_mid_dispatch_loses_nothing(make_cluster, tmp_path, receiver: HttpReceiver) -> None:
    cluster = make_cluster("routes:\n  - {notify: [duty], group_wait: 0s, group_by: ['...']}\n")
    db_url = f"sqlite:///{tmp_path / 'crash.sqlite'}"
    n = 60
    first = _spawn(cluster.source, db_url, "--fire", str(n))
    deadline = time.monotonic() + 30
    while len(receiver.requests) < 15 and time.monotonic() < deadline:
        time.sleep(0.002)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    got_before = len(receiver.requests)
    assert 15 <= got_before < n, "the kill did not land mid-dispatch"
    second = _spawn(cluster.source, db_url)
    try:
        receiver.wait_for(n, timeout_s=30)
        time.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    codes = collections.Counter(
        re.search(r"\[(\d+)\]", json.loads(r.body)["message"]).group(1) for r in receiver.requests
    )
    assert len(codes) == n  # nothing lost
    duplicates = sum(c - 1 for c in codes.values())
    assert duplicates <= 1
