"""Every input error of every command that reads a cluster file or options of its own:
exit code 2, no traceback, and one line naming the option, or a block of
`file:line path: message` lines (one per problem) naming the file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from ecocluster.cli import app
from tests.ecocluster.test_yaml_safety import HEAD

RULE = "  - {name: hot, type: threshold, quantity: power_w, above: 100}\n"

FILES: dict[str, str | bytes] = {
    "ok.yaml": HEAD + "rules:\n" + RULE,
    "latin.yaml": b"territory: {id: t, name: Caf\xe9}\n",
    "syntax.yaml": HEAD + "rules:\n  - {name: x\n",
    "tag.yaml": HEAD + "settings: !!python/object/apply:os.system [true]\n",
    "bomb.yaml": HEAD
    + "x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    + "".join(
        f"x{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n" for i in range(9)
    ),
    "deep.yaml": HEAD + "settings: " + "[" * 5000 + "]" * 5000 + "\n",
    "duration.yaml": HEAD + "rules:\n  - {name: hot, type: threshold, quantity: power_w, "
    "above: 1, for: 99999999999999d}\n",
    "rule-field.yaml": HEAD + "rules:\n  - {name: hot, type: threshold, quantity: power_w, "
    "abov: 1}\n",
    "empty.yaml": "",
    "escape.yaml": "include: [../outside.yaml]\n" + HEAD,
    "cycle-a.yaml": "include: [cycle-b.yaml]\n" + HEAD,
    "cycle-b.yaml": "include: [cycle-a.yaml]\n",
    "dup.yaml": HEAD + "territory: {id: u, name: U}\n",
    "settings.yaml": HEAD + "settings: {api_port: -1}\n",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-errors")
    (root / "outside.yaml").write_text(HEAD)
    here = root / "cluster"
    (here / "a-directory.yaml").mkdir(parents=True)
    for name, content in FILES.items():
        target = here / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return here


@pytest.fixture(autouse=True)
def _quiet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOCLUSTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ECOCLUSTER_INFLUX_URL", raising=False)
    for name in ("ECOCLUSTER_CONFIG_INCLUDE_ANYWHERE", "ECOCLUSTER_CONFIG_INCLUDE_DIRS"):
        monkeypatch.delenv(name, raising=False)


def invoke(files: Path, args: list[str]) -> Result:
    resolved = [a.replace("{dir}", str(files)) for a in args]
    return CliRunner().invoke(app, resolved)


def assert_usage_error(result: Result) -> list[str]:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines and all(line.strip() for line in lines), result.stderr
    assert all("\x1b" not in line for line in lines)
    return lines


# -- config files, through every command that reads one --------------------------------------
COMMANDS = {
    "check-config": ["check-config", "{file}"],
    "backtest": ["rules", "backtest", "--config", "{file}", "--from", "1d"],
    "dead-letters": ["dead-letters", "--config", "{file}"],
    "sim": ["sim", "--config", "{file}"],
}
BAD_FILES = {
    # file: (the line it names or None for the whole file, a piece of the message)
    "missing.yaml": (None, "no such file or directory"),
    "a-directory.yaml": (None, "is a directory"),
    "latin.yaml": (1, "not UTF-8 text"),
    "syntax.yaml": (9, "YAML syntax error"),
    "tag.yaml": (8, "unsupported YAML tag"),
    "bomb.yaml": (8, "aliases expand to too many values"),
    "deep.yaml": (8, "nesting deeper than"),
    "duration.yaml": (9, "rules[0].for: duration '99999999999999d' is out of range"),
    "empty.yaml": (1, "the file is empty"),
    "escape.yaml": (1, "outside the cluster file's directory"),
    "cycle-a.yaml": (None, "include cycle"),
    "dup.yaml": (8, "duplicate key 'territory' (first given on line 1)"),
}
_ISSUE = re.compile(r"^(?P<file>[^ :]+)(:(?P<line>\d+))?( \S+)?: \S")


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_cluster_file_is_a_block_of_file_line_messages(
    files: Path, command: str, name: str
) -> None:
    path = files / name
    args = [a.replace("{file}", str(path)) for a in COMMANDS[command]]
    lines = assert_usage_error(invoke(files, args))
    line_no, piece = BAD_FILES[name]
    assert all(_ISSUE.match(line) for line in lines), lines
    assert all(line.startswith(str(files)) for line in lines), lines
    (hit,) = [line for line in lines if piece in line]
    if line_no is not None:
        assert hit.startswith(f"{path}:{line_no}"), hit
    if name not in ("cycle-a.yaml",):
        assert len(lines) == 1, lines


@pytest.mark.parametrize("command", ["check-config", "backtest", "dead-letters"])
def test_field_and_settings_errors_name_the_file(files: Path, command: str) -> None:
    rule = files / "rule-field.yaml"
    if command != "dead-letters":  # it reads no rules
        args = [a.replace("{file}", str(rule)) for a in COMMANDS[command]]
        (line,) = assert_usage_error(invoke(files, args))
        assert line == f"{rule}:9 rules[0].abov: unknown field for this rule type"
    settings = files / "settings.yaml"
    args = [a.replace("{file}", str(settings)) for a in COMMANDS[command]]
    (line,) = assert_usage_error(invoke(files, args))
    assert line.startswith(f"{settings}: settings: setting 'api_port'")


# -- options ---------------------------------------------------------------------------------
BACKTEST = ["rules", "backtest", "--config", "{dir}/ok.yaml"]
OPTION_ERRORS = [
    (["--from", "1d", "--tick", "bogus"], "--tick", "invalid duration 'bogus'"),
    (["--from", "1d", "--tick", "1ms"], "--tick", "must be at least 1s"),
    (["--from", "1d", "--tick", "0s"], "--tick", "must be at least 1s"),
    (["--from", "1d", "--tick", "-5s"], "--tick", "invalid duration"),
    (["--from", "1d", "--tick", "99999999999999d"], "--tick", "out of range"),
    (["--from", "3000d", "--tick", "1s"], "--tick", "evaluations (at most 2,000,000)"),
    (["--from", "0001-01-01", "--to", "2026-01-01"], "--tick", "evaluations"),
    (["--from", "999999d"], "--from", "out of range"),
    (["--from", "30d", "--to", "0001-01-02"], "--from", "before the year 1"),
    (["--from", "2026-02-01", "--to", "2026-01-01"], "--from", "the range is empty"),
    (["--from", "2026-01-01", "--to", "2026-01-01"], "--from", "the range is empty"),
    (["--from", "yesterday"], "--from", "use an ISO date/time"),
    (["--from", "2026-01-01T25:00"], "--from", "use an ISO date/time"),
    (["--from", "1d", "--to", "soon"], "--to", "use an ISO date/time"),
    (["--from", "1d", "--format", "xml"], "--format", "unknown format 'xml'"),
    (["--from", "1d", "--limit", "ten"], "--limit", "not a whole number"),
    (["--from", "1d", "--limit", "-1"], "--limit", "not a whole number"),
    (["--from", "1d", "--rule", "nope"], "--rule", "unknown rule 'nope' (known: hot)"),
    (["--from", "1d", "--rule", "\x1b[2Jnope"], "--rule", "unknown rule '\\x1b[2Jnope'"),
]


@pytest.mark.parametrize(
    ("extra", "option", "piece"), OPTION_ERRORS, ids=[" ".join(c[0]) for c in OPTION_ERRORS]
)
def test_a_bad_backtest_option_is_one_line_naming_it(
    files: Path, extra: list[str], option: str, piece: str
) -> None:
    (line,) = assert_usage_error(invoke(files, [*BACKTEST, *extra]))
    assert line.startswith(f"{option}: "), line
    assert piece in line, line


def test_a_bad_dead_letters_option_is_one_line(files: Path) -> None:
    args = ["dead-letters", "--config", "{dir}/ok.yaml", "--last", "-1"]
    (line,) = assert_usage_error(invoke(files, args))
    assert line == "--last: must be 0 or more (got -1)"


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "backtest", "--config", "x.yaml"],  # --from missing
        ["dead-letters", "--config", "x.yaml", "--last", "many"],
    ],
    ids=["missing-option", "not-a-number"],
)
def test_clicks_own_usage_errors_are_one_line_too(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ecocluster", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
