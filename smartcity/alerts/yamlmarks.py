"""Where each value of a YAML document stands: the line of every field path, and duplicate keys.

PyYAML's ``compose`` keeps the node tree with its marks; ``safe_load`` throws them away and keeps
the last of two equal keys without a word. This module walks the composed tree once, so a problem
found later in the loaded data (a pydantic error's ``loc``, a semantic check) can name its line,
and a key written twice is a problem of its own rather than a silent override.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml

__all__ = ["MAX_VALUES", "DuplicateKey", "FieldPath", "Marks", "TooManyValues", "compose_marks"]

FieldPath = tuple[str | int, ...]

# A rule file of a few hundred rules holds a few thousand values. Aliases of aliases can make a
# short file stand for billions ("billion laughs"), which walking or validating would never finish.
MAX_VALUES = 100_000


class TooManyValues(ValueError):
    """The document stands for more than ``MAX_VALUES`` values once its aliases are followed."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key written twice in one mapping: where the second one stands and where the first did."""

    path: FieldPath  # the mapping's path plus the key
    line: int
    first_line: int


@dataclass(slots=True)
class Marks:
    """Lines (1-based) of a composed document's values, by field path; and its duplicate keys."""

    lines: dict[FieldPath, int] = field(default_factory=dict)
    visited: int = 0
    key_lines: dict[FieldPath, int] = field(default_factory=dict)
    duplicates: list[DuplicateKey] = field(default_factory=list)

    def line_of(self, path: FieldPath) -> int | None:
        """Return the line of ``path``, or of its closest parent that exists (a missing field)."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.lines:
                return self.lines[prefix]
        return None

    def key_line_of(self, path: FieldPath) -> int | None:
        """Return the line of the key ``path`` ends in (where a misspelt field name stands)."""
        return self.key_lines.get(path, self.line_of(path))


def _scalar_key(node: yaml.Node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _entries(node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node, bool]]:
    """Yield (key, value, own) of a mapping: merged entries (``<<: *anchor``) first, then its own.

    Own entries come after merged ones, so an own key overrides a merged one as YAML says.
    """
    own: list[tuple[yaml.Node, yaml.Node]] = []
    for key, value in node.value:
        if key.tag == _MERGE_TAG:
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    for merged_key, merged_value, _ in _entries(source):
                        yield merged_key, merged_value, False
        else:
            own.append((key, value))
    for key, value in own:
        yield key, value, True


def _walk(node: yaml.Node, path: FieldPath, marks: Marks, depth: int = 0) -> None:
    marks.visited += 1
    if marks.visited > MAX_VALUES:
        raise TooManyValues(f"the file stands for more than {MAX_VALUES:,} values (aliases of aliases?)")
    if depth > 50:  # an alias cycle cannot occur in composed YAML, but a hostile depth can
        return
    marks.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), marks, depth + 1)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value, own in _entries(node):
            name = _scalar_key(key)
            if name is None:
                continue
            line = key.start_mark.line + 1
            if own and name in seen:
                marks.duplicates.append(DuplicateKey((*path, name), line, seen[name]))
            if own:
                seen[name] = line
            marks.key_lines[(*path, name)] = line
            _walk(value, (*path, name), marks, depth + 1)


def compose_marks(text: str) -> Marks:
    """Compose ``text`` (one YAML document) and return the lines of its values and its duplicates.

    Raises:
        yaml.YAMLError: the text is not YAML.
        TooManyValues: its aliases expand beyond ``MAX_VALUES`` values.
    """
    marks = Marks()
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        _walk(root, (), marks)
    return marks
