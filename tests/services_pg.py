"""A real PostgreSQL (Debian's postgresql-15 binaries) on a free loopback port, its data in
a temp dir, for the alert store's contract tests. As root, the server runs as the
`postgres` user (PostgreSQL refuses to run as root) from a directory that user owns."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.services import MissingBinaryError, free_port, wait_for_port

__all__ = ["PostgresServer"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresServer:
    """Usage: `pg = PostgresServer(); pg.start(); url = pg.create_database("t1"); pg.stop()`."""

    def __init__(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise MissingBinaryError(
                "PostgreSQL 15 is not installed: run `apt-get install -y postgresql-15`"
            )
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ecocluster-pg-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)

    def start(self) -> None:
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        subprocess.run(
            self._cmd(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = self.root / "postgres.log"
        with open(log, "ab") as log_file:
            self.proc = self._spawn(log_file)
        self._wait_ready(log)

    def _spawn(self, log_file: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._cmd(
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.root),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ),
            stdout=subprocess.DEVNULL,
            stderr=log_file,  # type: ignore[arg-type]
        )

    def _wait_ready(self, log: Path) -> None:
        wait_for_port(self.port, timeout_s=30, proc=self.proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # accepting TCP is not yet accepting queries
            done = subprocess.run(self._psql("SELECT 1"), capture_output=True, timeout=10)
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"PostgreSQL did not accept queries: {log.read_text()[-1000:]}")

    def _psql(self, sql: str, db: str = "postgres") -> list[str]:
        psql = PG_BIN / "psql"
        return self._cmd(
            str(psql) if psql.exists() else "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            sql,
        )

    def create_database(self, name: str) -> str:
        subprocess.run(
            self._psql(f'CREATE DATABASE "{name}"'), check=True, capture_output=True, timeout=30
        )
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
            if self.proc.poll() is None:
                self.proc.kill()
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
