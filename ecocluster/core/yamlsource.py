"""Load YAML keeping where every value came from, so errors can name file, line and field.

PyYAML composes a node tree with start marks; we construct plain Python data from it
ourselves and record, for every path (`("meters", 3, "site")`), the file and line of that
value (of its key, for mapping entries: that is the line a person looks for). Duplicate
keys, which PyYAML silently accepts, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, printed as `file:line path: message`."""

    location: Location | None
    path: Path_
    message: str

    def __str__(self) -> str:
        where = f"{self.location.file}:{self.location.line}" if self.location else "<config>"
        dotted = format_path(self.path)
        return f"{where} {dotted}: {self.message}" if dotted else f"{where}: {self.message}"


class ConfigError(Exception):
    """The cluster file (or a file it includes) is not valid; `issues` lists every problem."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(
            issues,
            key=lambda i: (i.location.file, i.location.line) if i.location else ("", 0),
        )
        super().__init__("\n".join(str(i) for i in self.issues))


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class LocatedDocument:
    """Plain data plus a map from each path to where it was written."""

    data: Any
    locations: dict[Path_, Location] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def locate(self, path: Path_) -> Location | None:
        """The location of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            loc = self.locations.get(tuple(path[:end]))
            if loc is not None:
                return loc
        return None


def load_yaml(path: Path) -> LocatedDocument:
    """Parse one YAML file; syntax errors come back as issues, never as exceptions."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return LocatedDocument(None, issues=[ConfigIssue(None, (), f"{name}: {exc.strerror}")])
    except UnicodeDecodeError as exc:
        return LocatedDocument(
            None, issues=[ConfigIssue(Location(name, 1), (), f"not UTF-8 text ({exc.reason})")]
        )
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> LocatedDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        return LocatedDocument(
            None, issues=[ConfigIssue(Location(name, line), (), f"YAML syntax error: {problem}")]
        )
    except yaml.YAMLError as exc:
        return LocatedDocument(
            None, issues=[ConfigIssue(Location(name, 1), (), f"YAML error: {exc}")]
        )
    doc = LocatedDocument(None)
    if node is not None:
        doc.data = _build(node, (), name, doc)
    return doc


_SCALAR_LOADER = yaml.SafeLoader("")


def _build(node: yaml.Node, path: Path_, name: str, doc: LocatedDocument) -> Any:
    doc.locations.setdefault(path, Location(name, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build_scalar_key(key_node)
            child = (*path, key)
            if key in out:
                doc.issues.append(
                    ConfigIssue(
                        Location(name, key_node.start_mark.line + 1),
                        child,
                        f"duplicate key {key!r} (first given on line {doc.locations[child].line})",
                    )
                )
                continue
            doc.locations[child] = Location(name, key_node.start_mark.line + 1)
            out[key] = _build(value_node, child, name, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), name, doc) for i, item in enumerate(node.value)]
    return _SCALAR_LOADER.construct_object(node, deep=True)


def _build_scalar_key(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return _SCALAR_LOADER.construct_object(node, deep=True)
    return str(node.start_mark)
