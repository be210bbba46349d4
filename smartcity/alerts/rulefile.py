"""Reading a rule file: YAML in, validated ``RuleFile`` out, or every problem found, each named."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from smartcity.alerts.rules import RuleFile

__all__ = ["DEFAULT_RULES_PATH", "RuleFileError", "RuleProblem", "load_rules"]

DEFAULT_RULES_PATH = Path(__file__).with_name("paser-rules.yaml")


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


def load_rules(path: Path | None = None) -> RuleFile:
    """Read and validate the rule file at ``path`` (None: the shipped Paser defaults).

    Raises:
        RuleFileError: the file is missing, is not YAML, or breaks the rule schema.
    """
    path = DEFAULT_RULES_PATH if path is None else path
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RuleFileError(path, [RuleProblem(None, "", f"cannot read: {err.strerror}")]) from None
    except yaml.YAMLError as err:
        raise RuleFileError(path, [RuleProblem(None, "", f"not YAML: {err}")]) from None
    try:
        return RuleFile.model_validate(document)
    except ValidationError as err:
        problems = [RuleProblem(None, ".".join(str(p) for p in e["loc"]), e["msg"]) for e in err.errors()]
        raise RuleFileError(path, problems) from None
