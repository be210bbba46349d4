"""Golden cases: every folder under tests/data/payloads/<format>/<case>/ decodes as it says.

A case holds ``input`` (the raw payload) and optionally ``content_type`` and ``received_at``
(epoch seconds). ``expected`` is a JSON list of ``[time, metric, value]`` observations (time null
for the receive time); ``expected.err`` has one line per rejection, ``<reason> <detail substring>``,
in order. A missing file means none of that kind. Numbers compare to within 1e-9 relative. A
``source`` file, where present, tells how the input was made (e.g. the SenML library and version).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.decode import decode_payload
from smartcity.contract import Reason

CASES = Path(__file__).parent.parent / "data" / "payloads"
FORMATS = ("observation", "batch", "senml", "json")


def _case_dirs() -> list[Path]:
    return sorted(path.parent for path in CASES.glob("*/*/input"))


def _optional(case: Path, name: str) -> str | None:
    path = case / name
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def _same(actual: Any, expected: Any) -> bool:
    numbers = (int, float)
    if isinstance(expected, numbers) and not isinstance(expected, bool) \
            and isinstance(actual, numbers) and not isinstance(actual, bool):
        if isinstance(expected, int) and isinstance(actual, int):
            return actual == expected  # exact, so 10**400 stays 10**400
        return actual == pytest.approx(expected, rel=1e-9, abs=1e-9)
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize("case", _case_dirs(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_golden_case(case: Path) -> None:
    expected_path, err_path = case / "expected", case / "expected.err"
    assert expected_path.exists() or err_path.exists(), "a case needs expected or expected.err"
    received_at = _optional(case, "received_at")
    out = decode_payload((case / "input").read_bytes(), _optional(case, "content_type"),
                         None if received_at is None else float(received_at))

    expected = json.loads(expected_path.read_text(encoding="utf-8")) if expected_path.exists() else []
    actual = [[o.time, o.metric, o.value] for o in out.observations]
    assert len(actual) == len(expected), actual
    for got, want in zip(actual, expected, strict=True):
        assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)

    lines = err_path.read_text(encoding="utf-8").splitlines() if err_path.exists() else []
    wanted = [line.partition(" ")[::2] for line in lines if line.strip()]
    assert [r.reason.value for r in out.rejections] == [reason for reason, _ in wanted], out.rejections
    for rejection, (_, substring) in zip(out.rejections, wanted, strict=True):
        assert substring in rejection.detail
        assert rejection.detail  # a quarantine row always says why


def test_every_format_has_golden_cases() -> None:
    counts = {fmt: len(list((CASES / fmt).glob("*/input"))) for fmt in FORMATS}
    assert all(count >= 5 for count in counts.values()), counts
    assert {p.name for p in CASES.iterdir() if p.is_dir()} == set(FORMATS)


def test_golden_cases_reach_every_decoder_reason() -> None:
    reasons = {line.split(" ", 1)[0] for path in CASES.glob("*/*/expected.err")
               for line in path.read_text(encoding="utf-8").splitlines()}
    decoder_reasons = set(Reason) - {Reason.UNKNOWN_DEVICE, Reason.UNKNOWN_METRIC, Reason.NON_FINITE,
                                     Reason.PAYLOAD_TOO_LARGE}  # routing, validation, size: elsewhere
    assert {Reason(r) for r in reasons} == decoder_reasons
