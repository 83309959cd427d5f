"""Hostile or unusual YAML: every refusal is a ConfigIssue with file:line, in bounded time
and memory; merge keys work; includes stay where they are allowed."""

from __future__ import annotations

import resource
import textwrap
import time
from pathlib import Path

import pytest

from ecocluster.core.registry import ConfigError, load_cluster
from ecocluster.core.settings import IncludePolicy
from ecocluster.core.yamlsource import MAX_DEPTH, parse_yaml

HEAD = """\
territory: {id: t, name: T, timezone: UTC}
organisations:
  - {id: o1, name: O, kind: public}
sites:
  - {id: s1, org: o1, name: S, category: hotel, lat: 44.3, lon: 10.2}
meters:
  - {id: m1, site: s1, quantities: [power_w]}
"""


def write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_cluster(path, **kwargs)  # type: ignore[arg-type]
    return [str(issue) for issue in info.value.issues]


def bounded(text: str, *, seconds: float = 5.0, megabytes: float = 200.0) -> list[str]:
    """Parse `text`, asserting loose bounds on time and on the growth of the process's peak
    memory (`ru_maxrss`: cheap, unlike tracemalloc); return its issues as lines."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    doc = parse_yaml(text, "f.yaml")
    elapsed = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert grown_mb < megabytes, f"peak memory grew by {grown_mb:.0f} MB"
    return [str(issue) for issue in doc.issues]


# -- merge keys ------------------------------------------------------------------------------
def test_merge_keys_apply_and_errors_name_the_line_the_value_was_written_on(
    tmp_path: Path,
) -> None:
    text = HEAD + textwrap.dedent(
        """\
        rules:
          - &hot {name: hot, type: threshold, quantity: power_w, above: 100, for: 2m}
          - <<: *hot
            name: hot2
            above: 200
          - <<: [*hot]
            name: hot3
            severity: loud
        """
    )
    path = write(tmp_path, text)
    errors = errors_of(path)
    # the bad severity is written on line 15, in the third rule
    assert errors == [
        f"{path}:15 rules[2].severity: Input should be 'info', 'warning' or 'critical' (got 'loud')"
    ]
    path.write_text(text.replace("severity: loud", "severity: critical"))
    cluster = load_cluster(path)
    assert [r.name for r in cluster.rules] == ["hot", "hot2", "hot3"]
    assert cluster.rules[1].model_extra == {"above": 200}  # written wins over merged
    assert cluster.rules[2].for_.total_seconds() == 120  # merged from the anchor
    assert str(cluster.locate(("rules", 1, "for"))).endswith(":9")  # where `for` was written
    assert str(cluster.locate(("rules", 1, "above"))).endswith(":12")


def test_merge_precedence_earlier_sources_win() -> None:
    doc = parse_yaml("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n", "f")
    assert doc.issues == []
    assert doc.data["c"] == {"x": 1, "y": 2, "z": 3}


def test_a_merge_key_needs_mappings() -> None:
    issues = [str(i) for i in parse_yaml("a:\n  <<: 3\n  b: 1\n", "f.yaml").issues]
    assert issues == ["f.yaml:2 a: a merge key '<<' takes a mapping or a list of mappings"]


def test_duplicate_keys_stay_errors_next_to_merges() -> None:
    text = "a: &a {x: 1}\nb:\n  <<: *a\n  y: 1\n  y: 2\n"
    issues = [str(i) for i in parse_yaml(text, "f.yaml").issues]
    assert issues == ["f.yaml:5 b.y: duplicate key 'y' (first given on line 4)"]


# -- refusals in bounded time and memory ------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!python/object/apply:os.system [ls]\n", "f.yaml:1 a: unsupported YAML tag"),
        ("a: 1\nb: !custom x\n", "f.yaml:2 b: unsupported YAML tag '!custom'"),
        ("a:\n  b: !!set {x, y}\n", "f.yaml:2 a.b: unsupported YAML tag"),
        ("a: !!binary aGVsbG8=\n", "f.yaml:1 a: unsupported YAML tag"),
    ],
    ids=["python-object", "local-tag", "set", "binary"],
)
def test_unknown_tags_are_refused_with_their_line(text: str, expected: str) -> None:
    (issue,) = bounded(text)
    assert issue.startswith(expected), issue


def billion_laughs(levels: int = 10, width: int = 10) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_bounded_time_and_memory() -> None:
    (issue,) = bounded(billion_laughs())  # 10^10 values if expanded
    assert issue.startswith("f.yaml:") and "aliases expand to too many values" in issue


def test_a_merge_chain_bomb_is_refused_too() -> None:
    lines = ["m0: &m0 {k0: 1}"]
    lines += [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: 1}}" for i in range(1, 600)]
    issues = bounded("\n".join(lines) + "\n", seconds=10)
    assert any("aliases expand to too many values" in i or "merge keys nested" in i for i in issues)


def test_reasonable_aliases_are_fine() -> None:
    text = "d: &d {for: 2m, severity: critical}\n" + "".join(
        f"r{i}: {{<<: *d, name: r{i}}}\n" for i in range(500)
    )
    assert bounded(text) == []


def test_an_alias_inside_itself_is_refused() -> None:
    assert bounded("a: &a [1, *a]\n") == [
        "f.yaml:1 a[1]: an alias refers to the value that contains it"
    ]
    (issue,) = bounded("a: &a {x: 1, <<: *a}\n")
    assert issue.startswith("f.yaml:1") and "refers to the mapping that contains it" in issue


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 200_000 + "]" * 200_000 + "\n",
        "a: " + "{x: " * 50_000 + "1" + "}" * 50_000 + "\n",
        "- " * 100_000 + "x\n",
        "".join(" " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 10)) + " " * 80 + "v: 1\n",
        "a: " + "[" * 1_000_000,  # unterminated, 1 MB
    ],
    ids=["flow-lists", "flow-maps", "block-lists", "block-maps", "unterminated"],
)
def test_deep_nesting_is_refused_with_a_line(text: str) -> None:
    (issue,) = bounded(text)
    assert issue.startswith("f.yaml:") and f"nesting deeper than {MAX_DEPTH} levels" in issue


def test_deep_nesting_through_aliases_is_refused() -> None:
    deep = "[" * 60 + "1" + "]" * 60
    text = f"a: &a {deep}\nb: &b {'[' * 30}*a{']' * 30}\n"
    (issue,) = bounded(text)
    assert issue.startswith("f.yaml:1 b[0]") and "through aliases" in issue


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: " + "1" * 20_000 + "\n", "f.yaml:1 a: not a valid int"),
        ("a: 2026-13-45\n", "f.yaml:1 a: not a valid timestamp"),
        ("a: 1\nb: x\x00y\n", "f.yaml:2: control character U+0000 is not allowed"),
        ("? [a, b]\n: 1\n", "f.yaml:1: a key must be a plain value"),
        ("a: 1\n---\nb: 2\n", "f.yaml:2: YAML syntax error"),
    ],
    ids=["huge-int", "bad-date", "nul", "list-key", "two-documents"],
)
def test_odd_scalars_and_documents_are_issues(text: str, expected: str) -> None:
    (issue,) = bounded(text)
    assert issue.startswith(expected), issue


def test_an_absurd_duration_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    for value in ("99999999999999d", "1e300", ".nan", "9" * 400 + "s"):
        text = HEAD + (
            "rules:\n"
            f"  - {{name: hot, type: threshold, quantity: power_w, above: 1, for: {value}}}\n"
        )
        path = write(tmp_path, text)
        (error,) = errors_of(path)
        assert error.startswith(f"{path}:9 rules[0].for: "), error
        assert "\n" not in error and len(error) < 300


# -- files ----------------------------------------------------------------------------------
def test_unreadable_files_are_one_issue(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    assert errors_of(tmp_path / "dir.yaml") == [
        f"{tmp_path / 'dir.yaml'}: is a directory, not a YAML file"
    ]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"territory: {id: t, name: T}\nname: caf\xe9\n")
    assert errors_of(latin) == [f"{latin}:2: not UTF-8 text (byte 0xe9)"]
    assert errors_of(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: no such file or directory"
    ]


# -- includes -------------------------------------------------------------------------------
def test_a_diamond_include_is_merged_once_and_a_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "meters:\n  - {id: m2, site: s1, quantities: [power_w]}\n", "shared.yaml")
    write(tmp_path, "include: [shared.yaml]\n", "left.yaml")
    write(tmp_path, "include: [shared.yaml]\n", "right.yaml")
    root = write(tmp_path, "include: [left.yaml, right.yaml]\n" + HEAD)
    cluster = load_cluster(root)
    assert [m.id for m in cluster.meters] == ["m2", "m1"]

    write(tmp_path, "include: [b.yaml]\n", "a.yaml")
    write(tmp_path, "include: [a.yaml]\n", "b.yaml")
    root = write(tmp_path, "include: [a.yaml]\n" + HEAD)
    assert errors_of(root) == [
        f"{tmp_path / 'b.yaml'}:1 include[0]: include cycle: a.yaml → b.yaml → a.yaml"
    ]


def test_a_file_including_itself_is_a_cycle(tmp_path: Path) -> None:
    root = write(tmp_path, "include: [cluster.yaml]\n" + HEAD)
    assert errors_of(root) == [f"{root}:1 include[0]: include cycle: cluster.yaml → cluster.yaml"]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A YAML mapping outside the cluster's directory, holding a 'secret'."""
    secret = tmp_path / "elsewhere" / "secret.yaml"
    secret.parent.mkdir()
    secret.write_text("api_key: hunter2-topsecret\nother: value-xyz\n")
    return secret


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{secret}", "absolute include path"),
        ("../elsewhere/secret.yaml", "is outside the cluster file's directory"),
        ("link.yaml", "is outside the cluster file's directory"),
        ("/proc/self/environ", "absolute include path"),
    ],
    ids=["absolute", "dot-dot", "symlink-out", "proc"],
)
def test_includes_are_confined_to_the_cluster_directory(
    tmp_path: Path, outside: Path, entry: str, expected: str
) -> None:
    here = tmp_path / "territory"
    here.mkdir()
    (here / "link.yaml").symlink_to(outside)
    root = write(here, f"include: ['{entry.format(secret=outside)}']\n" + HEAD)
    errors = errors_of(root)
    assert len(errors) == 1 and errors[0].startswith(f"{root}:1 include[0]: ")
    assert expected in errors[0]
    assert "topsecret" not in errors[0] and "api_key" not in errors[0]


def test_a_setting_widens_includes_and_content_is_still_never_echoed(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "territory"
    root = write(here, f"include: ['{outside}']\n" + HEAD)
    # allowed by the allow-list: the file is read, but it is no cluster file
    errors = errors_of(root, includes=IncludePolicy(include_dirs=[outside.parent]))
    assert errors == [f"{outside}: not a cluster file (no known section)"]
    monkeypatch.setenv("ECOCLUSTER_CONFIG_INCLUDE_ANYWHERE", "true")
    errors = errors_of(root)  # the environment says anywhere
    assert errors == [f"{outside}: not a cluster file (no known section)"]
    write(outside.parent, "meters:\n  - {id: m9, site: s1, quantities: [power_w]}\n", "m.yaml")
    root.write_text(f"include: ['{outside.parent / 'm.yaml'}']\n" + HEAD)
    assert [m.id for m in load_cluster(root).meters] == ["m9", "m1"]
    # system files stay out even then
    root.write_text("include: ['/proc/self/environ']\n" + HEAD)
    (error,) = errors_of(root)
    assert "names a system file" in error and "PATH" not in error


def test_a_bad_include_setting_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECOCLUSTER_CONFIG_INCLUDE_ANYWHERE", "perhaps")
    (error,) = errors_of(write(tmp_path, HEAD))
    assert error.startswith("environment ECOCLUSTER_CONFIG_INCLUDE_ANYWHERE: ")
