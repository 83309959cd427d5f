"""Untrusted text reaches a terminal or a log only escaped: ESC, CR/LF, C1, bidi overrides."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.core.logs import JsonLinesFormatter, TextFormatter
from ecocluster.core.text import printable

HOSTILE = "eco/s1/\x1b[2J\x1b]0;owned\x07m1\r\nFAKE 00:00:00 ERROR forged\u202e\x9b31m\ud800"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain café ñ €", "plain café ñ €"),
        ("a\x1b[31mb", "a\\x1b[31mb"),
        ("line\nnext\rback\ttab", "line\\nnext\\rback\\ttab"),
        ("c1\x9b1m\x85", "c1\\x9b1m\\x85"),
        ("bidi\u202eevil\u2066x\u2069\u200f", "bidi\\u202eevil\\u2066x\\u2069\\u200f"),
        ("sep\u2028x", "sep\\u2028x"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("lone\udcff", "lone\\udcff"),
    ],
)
def test_printable_escapes_exactly_the_dangerous_characters(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    printable(raw).encode("utf-8")  # never raises, even for lone surrogates


def test_printable_can_keep_line_breaks_of_multi_line_text() -> None:
    assert printable("a\x1b\nb\r", keep_newlines=True) == "a\\x1b\nb\\r"
    assert printable(42) == "42"


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "ecocluster.t", "levelno": 30, "levelname": "WARNING"})
    record.msg, record.args = msg, args
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_the_text_log_format_escapes_messages_and_their_arguments() -> None:
    line = TextFormatter().format(_record("dropped %s", HOSTILE))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "\u202e" not in line and "\x9b" not in line
    assert line.endswith("dropped " + printable(HOSTILE))


def test_the_text_log_format_escapes_a_traceback_line_by_line() -> None:
    try:
        raise ValueError("bad \x1b[31m value")
    except ValueError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
    text = TextFormatter().format(record)
    assert "\x1b" not in text
    assert text.splitlines()[-1] == "ValueError: bad \\x1b[31m value"


def test_the_json_log_format_escapes_untrusted_extras() -> None:
    record = _record("topic %s", HOSTILE, topic=HOSTILE, labels={"k\x1b": [HOSTILE]})
    line = JsonLinesFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    for text in (entry["msg"], entry["topic"], entry["labels"]["k\\x1b"][0]):
        assert not any(c in text for c in "\x1b\r\n\u202e\x9b")
    assert entry["topic"] == printable(HOSTILE)


def test_a_logger_through_the_real_handler_writes_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ecocluster.core.logs import setup_logging

    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging("INFO", "text")
    logging.getLogger("ecocluster.t").warning("bad field %r", "x\nERROR fake")
    assert len(stream.getvalue().splitlines()) == 1


def test_dead_letters_output_is_escaped(tmp_path: Path, example_cluster_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    entry = {
        "recv_ms": 1,
        "topic": HOSTILE[:-1],  # JSON on disk cannot hold a lone surrogate
        "field": "m.\x1b[8mhidden",
        "reason": "schema\x1b[2J",
        "message": "value\r\nforged line",
        "count": 3,
    }
    (data / "dead-letters.jsonl").write_bytes(orjson.dumps(entry) + b"\n")
    result = CliRunner().invoke(
        app,
        ["dead-letters", "--config", str(example_cluster_path)],
        env={"ECOCLUSTER_DATA_DIR": str(data)},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines == [
        "schema\\x1b[2J".ljust(22) + " 3",
        f"1 {printable(HOSTILE[:-1])} m.\\x1b[8mhidden: [schema\\x1b[2J] value\\r\\nforged line",
    ]
    assert not any(c in result.stdout for c in "\x1b\r\u202e\x9b")
