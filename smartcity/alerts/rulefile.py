"""Reading a rule file: YAML in, validated ``RuleFile`` out, or every problem found, each named.

Each problem names its line, its field (``rules[3] (river-waspada).window``) and why, in plain
words, and all of them come at once: an operator fixes a file in one pass, not one error per run.
The schema (smartcity.alerts.rules) is checked rule by rule, so a broken rule does not hide the
next one's problems; rules that pass it are then checked against the catalogue
(smartcity.alerts.rulecheck), and those that do not have their names checked all the same. YAML
anchors and merges are fine (shared parts live under top-level ``x-…`` keys); a key written twice
in one mapping is an error (PyYAML alone would keep the last without a word).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from smartcity.alerts.rulecheck import check_names, check_rule
from smartcity.alerts.rules import Rule, RuleFile
from smartcity.alerts.yamlmarks import FieldPath, Marks, TooManyValues, compose_marks

__all__ = ["DEFAULT_RULES_PATH", "RuleFileError", "RuleProblem", "load_rules", "parse_rules"]

DEFAULT_RULES_PATH = Path(__file__).with_name("paser-rules.yaml")

_RULE: TypeAdapter[Any] = TypeAdapter(Rule)
_KINDS = ("threshold", "rate_of_rise", "silence", "ispu_category")
_TOP_LEVEL = ("version", "rules")
_ID_RULE = "3–64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rule file: where (line, dotted field path) and why."""

    line: int | None
    field: str
    why: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.field or '(file)'}: {self.why}"


class RuleFileError(ValueError):
    """A rule file that cannot be used; ``problems`` lists every problem found."""

    def __init__(self, path: Path, problems: list[RuleProblem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        """Return each problem as ``PATH:LINE: field: why``, the way compilers print theirs."""
        return [f"{self.path}{'' if p.line is None else f':{p.line}'}: {p.field or '(file)'}: {p.why}"
                for p in self.problems]


class _Problems:
    """Collects problems with their lines and readable field names."""

    def __init__(self, marks: Marks, rules: list[Any]) -> None:
        self.marks = marks
        self.rules = rules
        self.found: list[RuleProblem] = []

    def field_name(self, path: FieldPath) -> str:
        text = ""
        for index, part in enumerate(path):
            if isinstance(part, int):
                text += f"[{part}]"
                if index == 1 and path[0] == "rules" and part < len(self.rules):
                    rule = self.rules[part]
                    if isinstance(rule, Mapping) and isinstance(rule.get("id"), str):
                        text += f" ({rule['id']})"
            else:
                text += f".{part}" if text else part
        return text

    def add(self, path: FieldPath, why: str, *, at_key: bool = False) -> None:
        line = self.marks.key_line_of(path) if at_key else self.marks.line_of(path)
        self.found.append(RuleProblem(line, self.field_name(path), why))


def _why(error: ErrorDetails, kind: str | None) -> str:
    """Say in plain words what a pydantic error means in a rule file."""
    kind_text = f"a {kind} rule" if kind else "this"
    value = error.get("input")
    match error["type"]:
        case "missing":
            return f"required for {kind_text}; add it"
        case "extra_forbidden":
            return f"is not a field of {kind_text} (misspelt?)"
        case "union_tag_invalid":
            return f"unknown rule kind {value.get('kind')!r}; known: {', '.join(_KINDS)}" \
                if isinstance(value, Mapping) else f"unknown rule kind; known: {', '.join(_KINDS)}"
        case "union_tag_not_found":
            return f"every rule needs a kind: {', '.join(_KINDS)}"
        case "model_attributes_type" | "model_type" | "dict_type":
            return f"must be a mapping of fields (name: value), not {value!r}"
        case "string_pattern_mismatch":
            return f"{value!r} is not an id ({_ID_RULE})"
        case "literal_error" if value == "increase":
            return ("increase is a counter's rise per bucket, which a threshold does not judge; use"
                    " a rate_of_rise rule for how fast a value grows")
        case "literal_error":
            return f"{value!r}: {error['msg'][0].lower()}{error['msg'][1:]}"
        case "value_error":
            return error["msg"].removeprefix("Value error, ")
        case "tuple_type" | "list_type":
            return f"must be a list ([a, b] or one '- item' a line), not {value!r}"
        case _:
            return f"{value!r}: {error['msg'][0].lower()}{error['msg'][1:]}" \
                if not isinstance(value, Mapping | list) else error["msg"]


def _check_rule_schema(problems: _Problems, index: int, raw: Any) -> Any:
    """Validate one rule; report its problems and return the rule, or None when it is invalid."""
    try:
        return _RULE.validate_python(raw)
    except ValidationError as err:
        kind = raw.get("kind") if isinstance(raw, Mapping) else None
        for error in err.errors():
            loc = error["loc"]
            # A discriminated union puts the kind first in the location: it is no field.
            inner = loc[1:] if loc and loc[0] in _KINDS else loc
            path: FieldPath = ("rules", index, *inner)
            if error["type"] == "union_tag_invalid":
                path = (*path, "kind")
            problems.add(path, _why(error, kind if kind in _KINDS else None),
                         at_key=error["type"] == "extra_forbidden")
        if isinstance(raw, Mapping):
            for inner_path, why in check_names(raw):
                problems.add(("rules", index, *inner_path), why)
    return None


def _is_extension(key: object) -> bool:
    # Compose's convention: a top-level x-… key holds parts the rules merge in (``<<: *anchor``).
    return isinstance(key, str) and key.startswith("x-")


def _check_document(document: Any, problems: _Problems) -> None:
    if document is None:
        problems.add((), "the file is empty; it starts with 'version: 1' and a list of 'rules:'")
        return
    if not isinstance(document, Mapping):
        problems.add((), "must be a mapping with 'version: 1' and 'rules:'")
        return
    for key in document:
        if key not in _TOP_LEVEL and not _is_extension(key):
            problems.add((str(key),), f"is not a top-level field; a rule file has {' and '.join(_TOP_LEVEL)}"
                         f" (and x-… keys for shared parts)", at_key=True)
    if "version" not in document:
        problems.add(("version",), "required: write 'version: 1' (the format of this file)")
    elif document["version"] != 1 or isinstance(document["version"], bool):
        problems.add(("version",), f"{document['version']!r} is not a version this platform reads (1)")
    rules = document.get("rules")
    if "rules" not in document:
        problems.add(("rules",), "required: the list of rules (may be empty: 'rules: []')")
    elif not isinstance(rules, list):
        problems.add(("rules",), "must be a list of rules, each starting with '- id:'")


def _check_rules(rules: list[Any], problems: _Problems) -> None:
    first_of: dict[str, int] = {}
    for index, raw in enumerate(rules):
        rule = _check_rule_schema(problems, index, raw)
        rule_id = raw.get("id") if isinstance(raw, Mapping) else None
        if isinstance(rule_id, str):
            if rule_id in first_of:
                other = first_of[rule_id]
                problems.add(("rules", index, "id"), f"duplicate id {rule_id!r}: rules[{other}] on line"
                             f" {problems.marks.line_of(('rules', other))} has it already; ids are unique")
            else:
                first_of[rule_id] = index
        if rule is not None:
            for path, why in check_rule(rule):
                problems.add(("rules", index, *path), why)


def parse_rules(text: str, path: Path) -> RuleFile:
    """Validate the rule file ``text`` (read from ``path``, which problems name).

    Raises:
        RuleFileError: the text is not YAML, or breaks the rule schema or the semantic checks.
    """
    try:
        marks = compose_marks(text)
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = None if mark is None else mark.line + 1
        why = " ".join(part for part in (err.context, err.problem) if part)
        raise RuleFileError(path, [RuleProblem(line, "", f"not YAML: {why}")]) from None
    except yaml.YAMLError as err:
        raise RuleFileError(path, [RuleProblem(None, "", f"not YAML: {err}")]) from None
    except TooManyValues as err:
        raise RuleFileError(path, [RuleProblem(None, "", str(err))]) from None
    rules = document.get("rules") if isinstance(document, Mapping) else None
    problems = _Problems(marks, rules if isinstance(rules, list) else [])
    for duplicate in marks.duplicates:
        name = duplicate.path[-1]
        problems.found.append(RuleProblem(
            duplicate.line, problems.field_name(duplicate.path),
            f"duplicate key {name!r} (first on line {duplicate.first_line}); YAML would keep only this"
            " one: remove one of them"))
    _check_document(document, problems)
    _check_rules(problems.rules, problems)
    if problems.found:
        ordered = sorted(problems.found, key=lambda p: (p.line is not None, p.line or 0))
        raise RuleFileError(path, ordered)
    return RuleFile.model_validate({k: v for k, v in document.items() if not _is_extension(k)})


def load_rules(path: Path | None = None) -> RuleFile:
    """Read and validate the rule file at ``path`` (None: the shipped Paser defaults).

    Raises:
        RuleFileError: the file is missing, is not YAML, or breaks the rule schema.
    """
    path = DEFAULT_RULES_PATH if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(path, [RuleProblem(None, "", f"cannot read: {err.strerror}")]) from None
    except UnicodeDecodeError as err:
        raise RuleFileError(path, [RuleProblem(None, "", f"not UTF-8 text: {err.reason}")]) from None
    return parse_rules(text, path)
