"""Quarantine reason codes of the contract, and the rejection record that carries one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Reason", "Rejection"]


class Reason(StrEnum):
    """Why a reading or message was quarantined instead of stored."""

    INVALID_JSON = "invalid_json"
    INVALID_SCHEMA = "invalid_schema"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_METRIC = "unknown_metric"
    UNIT_MISMATCH = "unit_mismatch"
    OUT_OF_RANGE = "out_of_range"
    NON_FINITE = "non_finite"
    TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"
    PAYLOAD_TOO_LARGE = "payload_too_large"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One invalid part of a message: the reason code and a human-readable detail."""

    reason: Reason
    detail: str
