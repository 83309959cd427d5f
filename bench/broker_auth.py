"""What the password hash's iteration count costs a real Mosquitto at CONNECT.

Every CONNECT runs one PBKDF2-SHA512 over the account's iterations. After a broker restart
every device reconnects at once, so this cost decides how long a reconnect storm keeps the
broker busy. Measures the median CONNECT→CONNACK time for an account hashed with
Mosquitto's default 101 iterations (what `broker-config` uses for the 192-bit secrets it
generates; the baseline) and with 20,000 (for passwords people chose), on one real broker
in the same process.

    .venv/bin/python -m bench.broker_auth [--connects 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

from ecocluster.deploy.passwd import GENERATED_ITERATIONS, HUMAN_ITERATIONS, mosquitto_hash
from tests.services import MosquittoServer

_CONNECT_311 = bytes.fromhex("10")  # CONNECT packet type; body built below


def _connect_packet(user: str, password: str) -> bytes:
    def utf8(text: str) -> bytes:
        raw = text.encode()
        return len(raw).to_bytes(2, "big") + raw

    body = utf8("MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big")
    body += utf8(f"b-{os.getpid()}") + utf8(user) + utf8(password)
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return _CONNECT_311 + encoded + body


def _connect_ms(port: int, user: str, password: str) -> float:
    packet = _connect_packet(user, password)
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        sock.sendall(packet)
        connack = sock.recv(4)
        elapsed = (time.perf_counter() - start) * 1000
    if len(connack) < 4 or connack[3] != 0:
        raise RuntimeError(f"CONNECT refused: {connack!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connects", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    root.chmod(0o755)
    try:
        passwd = root / "passwd"
        passwd.write_text(
            f"fast:{mosquitto_hash('pw-fast', iterations=GENERATED_ITERATIONS)}\n"
            f"slow:{mosquitto_hash('pw-slow', iterations=HUMAN_ITERATIONS)}\n"
        )
        passwd.chmod(0o644)
        broker = MosquittoServer(root / "mq", password_file=passwd)
        (root / "mq").chmod(0o777)
        broker.start()
        try:
            results = {}
            for user, password in (("fast", "pw-fast"), ("slow", "pw-slow")):
                times = [_connect_ms(broker.port, user, password) for _ in range(args.connects)]
                results[user] = statistics.median(times)
        finally:
            broker.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    fast, slow = results["fast"], results["slow"]
    print(
        f"CONNECT→CONNACK median over {args.connects}: {GENERATED_ITERATIONS} iterations"
        f" {fast:.3f} ms (baseline), {HUMAN_ITERATIONS} iterations {slow:.3f} ms"
        f" ({slow / fast:.1f}× the baseline)"
    )
    print(
        f"a reconnect storm of 10,000 devices, CONNECTs handled one at a time: "
        f"{fast * 10:.1f} s vs {slow * 10:.1f} s"
    )


if __name__ == "__main__":
    main()
