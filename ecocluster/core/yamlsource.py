"""Load YAML keeping where every value came from, so errors can name file, line and field.

PyYAML composes a node tree with start marks; we construct plain Python data from it
ourselves and record, for every path (`("meters", 3, "site")`), the file and line of that
value (of its key, for mapping entries: that is the line a person looks for).

A cluster file is written by people and sometimes handed over by others, so loading is
defensive, and every refusal is a `ConfigIssue` with file and line, never an exception:
- duplicate keys (PyYAML keeps the last one silently) are errors;
- merge keys (`<<: *defaults`) work; a merged value keeps the line it was written on;
- only the YAML core tags are constructed: `!!python/object`, `!custom`, `!!set`… are refused;
- nesting deeper than `MAX_DEPTH` is refused before PyYAML's recursive composer would
  overflow the stack;
- aliases may not expand to more than `MAX_EXPANSION` times the file's own size ("billion
  laughs"), nor refer to themselves, so time and memory stay bounded by the file's size;
- files larger than `MAX_FILE_BYTES` are not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from ecocluster.core.errors import FatalError
from ecocluster.core.text import printable

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANSION",
    "MAX_FILE_BYTES",
    "ConfigError",
    "ConfigIssue",
    "LocatedDocument",
    "Location",
    "Path_",
    "format_path",
    "load_yaml",
    "locate",
    "parse_yaml",
]

Path_ = tuple[str | int, ...]

#: Deepest nesting of mappings and lists (a cluster file needs about 6).
MAX_DEPTH = 64
#: Values built from aliases: at most this many times the values written, plus a floor.
MAX_EXPANSION = 4
_EXPANSION_FLOOR = 20_000
MAX_FILE_BYTES = 32 * 1024 * 1024

_CORE = "tag:yaml.org,2002:"
_MERGE_TAG = _CORE + "merge"
_SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp"))


@dataclass(frozen=True, slots=True)
class Location:
    """A line of a file; `line == 0` means the file as a whole (it could not be read)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, printed as `file:line path: message` (escaped: keys
    and values come from the file and may hold terminal control sequences)."""

    location: Location | None
    path: Path_
    message: str

    def __str__(self) -> str:
        where = str(self.location) if self.location else "<config>"
        dotted = format_path(self.path)
        text = f"{where} {dotted}: {self.message}" if dotted else f"{where}: {self.message}"
        return printable(text)


class ConfigError(FatalError):
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


def locate(locations: Mapping[Path_, Location], path: Path_) -> Location | None:
    """The location of `path`, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        loc = locations.get(tuple(path[:end]))
        if loc is not None:
            return loc
    return None


@dataclass
class LocatedDocument:
    """Plain data plus a map from each path to where it was written."""

    data: Any
    locations: dict[Path_, Location] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def locate(self, path: Path_) -> Location | None:
        return locate(self.locations, path)


def load_yaml(path: Path) -> LocatedDocument:
    """Parse one YAML file; unreadable files and syntax errors come back as issues."""
    name = str(path)
    try:
        if path.is_dir():
            return _failed(Location(name, 0), "is a directory, not a YAML file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return _failed(
                Location(name, 0), f"too large ({size:,} bytes; at most {MAX_FILE_BYTES:,})"
            )
        raw = path.read_bytes()
    except OSError as exc:
        return _failed(Location(name, 0), (exc.strerror or type(exc).__name__).lower())
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _failed(Location(name, line), f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> LocatedDocument:
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        last_line = max(1, len(text.splitlines()))  # "at the end of the stream": the last line
        line = min(mark.line + 1, last_line) if mark else 1
        return _failed(Location(name, line), f"YAML syntax error: {problem}")
    except yaml.reader.ReaderError as exc:  # a control character: no mark, a position
        line = text[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else 0
        return _failed(Location(name, line), f"control character U+{code:04X} is not allowed")
    except RecursionError:  # a belt: _BoundedLoader refuses deep nesting before this
        return _failed(Location(name, 1), f"nesting deeper than {MAX_DEPTH} levels")
    finally:
        if loader is not None:
            loader.dispose()
    doc = LocatedDocument(None)
    if node is not None:
        _Builder(name, doc, node).build_document(node)
    return doc


def _failed(location: Location, message: str) -> LocatedDocument:
    return LocatedDocument(None, issues=[ConfigIssue(location, (), message)])


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than `MAX_DEPTH` as soon as it is seen.

    The composer recurses once per level (`[[[[…` would overflow the stack), and the
    scanner looks ahead over every open flow collection for a possible key, which is
    quadratic in their depth: 100,000 `[` took seconds before the composer saw level 65."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, token_class: type) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"nesting deeper than {MAX_DEPTH} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nesting deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooLarge(Exception):
    """Aliases expanded past the budget: the document is abandoned."""


class _Builder:
    """Builds plain data from a composed node graph, with the budget and checks above."""

    def __init__(self, name: str, doc: LocatedDocument, root: yaml.Node) -> None:
        self.name = name
        self.doc = doc
        self.budget = _EXPANSION_FLOOR + MAX_EXPANSION * _count_nodes(root)
        self.active: set[int] = set()  # ids of nodes being built: an alias cycle
        self.merged: dict[int, dict[Any, tuple[yaml.Node, yaml.Node]]] = {}
        self.scalars = SafeConstructor()

    def build_document(self, root: yaml.Node) -> None:
        try:
            self.doc.data = self.build(root, ())
        except _TooLarge as exc:
            self.doc.data = None
            self.doc.locations.clear()
            self.doc.issues[:] = [ConfigIssue(self.at(exc.args[0]), (), exc.args[1])]

    def at(self, node: yaml.Node) -> Location:
        return Location(self.name, node.start_mark.line + 1)

    def issue(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.doc.issues.append(ConfigIssue(self.at(node), path, message))

    def spend(self, node: yaml.Node) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise _TooLarge(
                node,
                "aliases expand to too many values (an alias bomb?); "
                "write the values out or use fewer nested aliases",
            )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.spend(node)
        self.doc.locations.setdefault(path, self.at(node))
        if len(path) > MAX_DEPTH:
            self.issue(node, path, f"nesting deeper than {MAX_DEPTH} levels (through aliases)")
            return None
        if id(node) in self.active:
            self.issue(node, path, "an alias refers to the value that contains it")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode) and node.tag == _CORE + "map":
                return self.mapping(node, path)
            if isinstance(node, yaml.SequenceNode) and node.tag == _CORE + "seq":
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            self.issue(node, path, f"unsupported YAML tag {node.tag!r}")
            return None
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.issue(node, path, f"unsupported YAML tag {node.tag!r}")
            return None
        try:
            return self.scalars.yaml_constructors[node.tag](self.scalars, node)
        except (ValueError, OverflowError, yaml.YAMLError):
            kind = node.tag.removeprefix(_CORE)
            self.issue(node, path, f"not a valid {kind} ({len(node.value)} characters)")
            return None

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, (key_node, value_node) in self.entries(node, path).items():
            child = (*path, key)
            self.doc.locations[child] = self.at(key_node)
            out[key] = self.build(value_node, child)
        return out

    def entries(
        self, node: yaml.MappingNode, path: Path_, depth: int = 0
    ) -> dict[Any, tuple[yaml.Node, yaml.Node]]:
        """Key → (key node, value node), merge keys applied: keys written in the mapping
        win over merged ones, earlier merge sources over later ones (YAML merge spec)."""
        known = self.merged.get(id(node))
        if known is not None:  # a mapping merged in many places is flattened once
            return known
        if depth > MAX_DEPTH:
            self.issue(node, path, f"merge keys nested deeper than {MAX_DEPTH} levels")
            return {}
        explicit: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        sources: list[yaml.MappingNode] = []
        merge_line: int | None = None
        for key_node, value_node in node.value:
            self.spend(key_node)
            if key_node.tag == _MERGE_TAG:
                if merge_line is not None:
                    self.issue(
                        key_node, path, f"duplicate merge key '<<' (first on line {merge_line})"
                    )
                    continue
                merge_line = key_node.start_mark.line + 1
                sources = self.merge_sources(value_node, path)
                continue
            key = self.key(key_node, path)
            if key is _NO_KEY:
                continue
            if key in explicit:
                first = explicit[key][0].start_mark.line + 1
                self.issue(
                    key_node, (*path, key), f"duplicate key {key!r} (first given on line {first})"
                )
                continue
            explicit[key] = (key_node, value_node)
        merged: dict[Any, tuple[yaml.Node, yaml.Node]] = {}
        for source in sources:
            self.active.add(id(source))
            try:
                for key, pair in self.entries(source, path, depth + 1).items():
                    self.spend(pair[0])
                    merged.setdefault(key, pair)
            finally:
                self.active.discard(id(source))
        merged = {k: v for k, v in merged.items() if k not in explicit}
        merged.update(explicit)
        self.merged[id(node)] = merged
        return merged

    def merge_sources(self, value: yaml.Node, path: Path_) -> list[yaml.MappingNode]:
        items = value.value if isinstance(value, yaml.SequenceNode) else [value]
        sources: list[yaml.MappingNode] = []
        for item in items:
            if not isinstance(item, yaml.MappingNode) or item.tag != _CORE + "map":
                self.issue(item, path, "a merge key '<<' takes a mapping or a list of mappings")
            elif id(item) in self.active:
                self.issue(item, path, "a merge key refers to the mapping that contains it")
            else:
                sources.append(item)
        return sources

    def key(self, node: yaml.Node, path: Path_) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.issue(node, path, "a key must be a plain value, not a mapping or a list")
            return _NO_KEY
        value = self.scalar(node, path)
        return _NO_KEY if value is None and node.tag != _CORE + "null" else value


_NO_KEY = object()


def _count_nodes(root: yaml.Node) -> int:
    """Distinct nodes of the composed graph (an alias is the node it names: counted once)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
    return len(seen)
