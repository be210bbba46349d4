"""Grafana's PostgreSQL macros and template-variable interpolation, reproduced so panels' SQL runs in tests.

Implements the semantics described in shared/reference/grafana.md (Grafana's browser-side variable
interpolation and interval rounding, then the grafana-postgresql-datasource macro engine), written from
that description and Grafana's public documentation; no Grafana code is copied (Grafana is AGPL).

Errors: every refusal is a ``MacroError`` (a ``ValueError``) whose message names the macro, variable or
argument at fault; nothing is ever left half-expanded silently.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final, cast

__all__ = ["ALL", "Interval", "MacroError", "Variable", "expand", "interval_for"]

ALL: Final = "$__all"
"""The value Grafana stores when a variable's "All" option is selected."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS_PER: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
                  "w": 604_800_000, "M": 2_592_000_000, "y": 31_536_000_000}
# Grafana's ladder of nice intervals: (below this many ms, use this many ms); above the last, 1y.
_LADDER: Final = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000),
    (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000),
    (45_000, 30_000), (90_000, 60_000), (210_000, 120_000), (450_000, 300_000), (750_000, 600_000),
    (1_050_000, 900_000), (1_500_000, 1_200_000), (2_700_000, 1_800_000), (5_400_000, 3_600_000),
    (9_000_000, 7_200_000), (16_200_000, 10_800_000), (32_400_000, 21_600_000),
    (86_400_000, 43_200_000), (604_800_000, 86_400_000), (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_YEAR_MS: Final = 31_536_000_000
_MIN_INTERVAL = re.compile(r">?(\d+)(ms|[smhdwMy])?")
# The browser's three spellings: $name, [[name(:format)]], ${name(.path)(:format)}.
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}",
                       re.ASCII)
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
_LEFTOVER = re.compile(r"\$__\w+", re.ASCII)
_NAME = re.compile(r"\w+", re.ASCII)
_GO_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")
_GO_NS: Final = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
                 "m": 60 * 10**9, "h": 3_600 * 10**9}
_DATE_UNIT = re.compile(r"(\d+)([dwMy])")
# What Go's strconv.ParseFloat takes in decimal (hexadecimal floats left out).
_FILL_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf|infinity|nan))")


class MacroError(ValueError):
    """A macro, variable, argument or time range Grafana would refuse (or that this module cannot honour)."""


@dataclass(frozen=True)
class Interval:
    """The panel interval Grafana computes: ``ms`` for ``$__interval_ms``, ``text`` for ``$__interval``."""

    ms: int
    text: str


@dataclass(frozen=True)
class Variable:
    """A dashboard template variable: its options and which of them is selected.

    ``current`` is the selection: option values, or ``(ALL,)`` for the All option; empty means the
    first option (Grafana's default). A custom ``all_value`` is inserted verbatim when All is chosen.
    """

    name: str
    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    current: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or self.name.startswith("__"):
            raise MacroError(f"variable name {self.name!r} must be letters, digits or _, "
                             "and not start with __")
        # Typed as tuples, but a caller passing one string would otherwise get one option per letter.
        if isinstance(cast(object, self.values), str) or isinstance(cast(object, self.current), str):
            raise MacroError(f"variable {self.name!r}: values and current are sequences of strings, "
                             "not one string")
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "current", tuple(self.current))
        if not self.values:
            raise MacroError(f"variable {self.name!r} has no options")
        if any(not isinstance(v, str) for v in self.values) or len(set(self.values)) != len(self.values):
            raise MacroError(f"variable {self.name!r}: options must be distinct strings, got {self.values!r}")
        if ALL in self.values:
            raise MacroError(f"variable {self.name!r}: {ALL!r} is reserved for the All option")
        if self.all_value is not None and not self.include_all:
            raise MacroError(f"variable {self.name!r} has an all_value but no All option (include_all)")
        chosen = self.selected
        if chosen == (ALL,):
            if not self.include_all:
                raise MacroError(f"variable {self.name!r} has no All option to select")
            return
        if not self.multi and len(chosen) != 1:
            raise MacroError(f"variable {self.name!r} takes one value, not {len(chosen)}: {chosen!r}")
        unknown = [v for v in chosen if v not in self.values]
        if unknown or ALL in chosen:
            raise MacroError(f"variable {self.name!r}: {unknown or [ALL]!r} not among its options "
                             f"{self.values!r} (All is selected alone)")

    @property
    def selected(self) -> tuple[str, ...]:
        """The selection, the default (first option) filled in."""
        return self.current or self.values[:1]

    def select(self, *chosen: str) -> Variable:
        """Return this variable with ``chosen`` selected (``ALL`` alone for the All option)."""
        return Variable(self.name, self.values, self.multi, self.include_all, self.all_value, tuple(chosen))

    def selections(self) -> tuple[Variable, ...]:
        """Enumerate selections worth testing: each option alone, two and every option together, All."""
        picks: list[tuple[str, ...]] = [(v,) for v in self.values]
        if self.multi and len(self.values) > 1:
            picks.append(self.values[:2])
            if len(self.values) > 2:
                picks.append(self.values)
        if self.include_all:
            picks.append((ALL,))
        return tuple(self.select(*pick) for pick in picks)


def interval_for(time_from: datetime, time_to: datetime, max_data_points: int,
                 min_interval: str = "1m") -> Interval:
    """Compute Grafana's ``$__interval``: range / max data points, made a nice interval, floored."""
    start, end = _utc_range(time_from, time_to)
    if isinstance(max_data_points, bool) or not isinstance(max_data_points, int) or max_data_points < 1:
        raise MacroError(f"max_data_points must be a positive whole number, got {max_data_points!r}")
    span_ms = (end - start) // timedelta(milliseconds=1)
    ms = _round_interval(span_ms / max_data_points)
    return _interval(max(ms, _min_interval_ms(min_interval)))


def expand(sql: str, *, time_from: datetime, time_to: datetime, variables: Iterable[Variable] = (),
           max_data_points: int, min_interval: str = "1m", timescaledb: bool = True) -> str:
    """Return the SQL Grafana would send to PostgreSQL for this panel query, range and selection."""
    if not isinstance(sql, str):
        raise MacroError(f"sql must be a string, got {type(sql).__name__}")
    start, end = _utc_range(time_from, time_to)
    interval = interval_for(start, end, max_data_points, min_interval)
    by_name: dict[str, Variable] = {}
    for variable in variables:
        if variable.name in by_name:
            raise MacroError(f"variable {variable.name!r} is given twice")
        by_name[variable.name] = variable
    sql = _interpolate_variables(sql, by_name, start, end, interval)
    # The backend's plain-text pass: _ms first, or "$__interval" would eat its prefix.
    sql = sql.replace("$__interval_ms", str(interval.ms)).replace("$__interval", interval.text)
    sql = sql.replace("$__unixEpochFrom()", str(_unix(start))).replace("$__unixEpochTo()", str(_unix(end)))
    sql = _expand_macros(sql, start, end, timescaledb)
    leftover = _LEFTOVER.search(sql)
    if leftover:
        raise MacroError(f"{leftover[0]} was left unexpanded: not a supported built-in, or a macro "
                         "without a closed argument list such as $__timeFilter(time)")
    return sql


# --- time and interval text -----------------------------------------------------------------------

def _utc_range(time_from: datetime, time_to: datetime) -> tuple[datetime, datetime]:
    for label, moment in (("time_from", time_from), ("time_to", time_to)):
        if not isinstance(moment, datetime) or moment.utcoffset() is None:
            raise MacroError(f"{label} must be a timezone-aware datetime, got {moment!r}")
    start, end = time_from.astimezone(UTC), time_to.astimezone(UTC)
    if start >= end:
        raise MacroError(f"time_from ({_rfc3339(start)}) must be before time_to ({_rfc3339(end)})")
    return start, end


def _rfc3339(moment: datetime) -> str:
    """Go's RFC3339Nano in UTC: fractional seconds without trailing zeros (none when whole), then Z."""
    moment = moment.astimezone(UTC)
    text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _unix(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(seconds=1)


def _unix_nano(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


def _round_interval(ms: float) -> int:
    for below, nice in _LADDER:
        if ms < below:
            return nice
    return _YEAR_MS


def _min_interval_ms(text: str) -> int:
    match = _MIN_INTERVAL.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise MacroError(f"min_interval {text!r} is not a whole count with a unit "
                         f"({', '.join(_MS_PER)}), e.g. 1m or 30s")
    return int(match[1]) * _MS_PER[match[2] or "s"]


def _interval(ms: int) -> Interval:
    """Name ``ms`` by its largest non-zero unit, truncated, as Grafana does (90 s → 1m)."""
    if ms >= _YEAR_MS:
        return Interval(ms, f"{ms // _YEAR_MS}y")
    rest = ms % _YEAR_MS
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if rest // size:
            return Interval(ms, f"{rest // size}{unit}")
        rest %= size
    return Interval(ms, f"{ms}ms")


# --- dashboard variables (the browser's pass) -----------------------------------------------------

def _interpolate_variables(sql: str, variables: dict[str, Variable], start: datetime, end: datetime,
                           interval: Interval) -> str:
    # $__range and friends are left out: Grafana documents them for Prometheus and Loki only.
    builtins = {"__interval": interval.text, "__interval_ms": str(interval.ms),
                "__from": str(_unix_ms(start)), "__to": str(_unix_ms(end))}

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[4]
        fmt = match[3] or match[6]
        if match[5]:
            raise MacroError(f"{match[0]}: field paths (.{match[5]}) are not supported")
        if name in ("__from", "__to") and fmt and fmt.startswith("date"):
            return _format_date(start if name == "__from" else end, fmt, match[0])
        if name in builtins:
            return _format(builtins[name], fmt, match[0], quote_default=False)
        if name.startswith("__"):
            return match[0]  # a macro or backend built-in: the data source expands it
        variable = variables.get(name)
        if variable is None:
            raise MacroError(f"undefined variable {match[0]}: define {name!r} "
                             f"(known: {', '.join(sorted(variables)) or 'none'})")
        return _format_variable(variable, fmt, match[0])

    return _VARIABLE.sub(replace, sql)


def _unix_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _js_round(x: float) -> int:
    return int(Decimal(x).to_integral_value(rounding="ROUND_HALF_UP"))


def _format_date(moment: datetime, fmt: str, token: str) -> str:
    ms = _unix_ms(moment)
    if fmt in ("date", "date:iso"):
        whole = _EPOCH + timedelta(milliseconds=ms)
        return whole.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    if fmt == "date:seconds":
        return str(_js_round(ms / 1000))
    if fmt == "date:ms":
        return str(ms)
    raise MacroError(f"{token}: date format {fmt!r} is not supported (date, date:iso, date:seconds, date:ms)")


def _format_variable(variable: Variable, fmt: str | None, token: str) -> str:
    chosen = variable.selected
    if chosen == (ALL,):
        if variable.all_value is not None:
            return variable.all_value  # Grafana inserts a custom all value unformatted
        value: str | list[str] = list(variable.values)
    elif variable.multi:
        value = list(chosen)
    else:
        value = chosen[0]
    return _format(value, fmt, token, quote_default=variable.multi or variable.include_all)


def _format(value: str | list[str], fmt: str | None, token: str, *, quote_default: bool) -> str:
    """Format a value as the PostgreSQL data source (no format) or a named Grafana format does."""
    items = value if isinstance(value, list) else [value]
    if fmt is None:
        if isinstance(value, list) or quote_default:
            return ",".join(_sql_literal(v) for v in items)
        return value.replace("'", "''")
    if fmt == "sqlstring":
        # Grafana's sqlstring also turns " into \" (which PostgreSQL keeps as two characters).
        return ",".join(_sql_literal(v.replace('"', '\\"')) for v in items)
    if fmt in ("csv", "raw"):
        return ",".join(items)
    if fmt == "pipe":
        return "|".join(items)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in items)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in items)
    if fmt == "json":  # a single value goes in as it is; a list as a JSON array
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                               separators=(",", ":"))
    raise MacroError(f"{token}: format {fmt!r} is not supported "
                     "(sqlstring, csv, raw, pipe, singlequote, doublequote, json)")


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- macros (the data source's pass) --------------------------------------------------------------

def _expand_macros(sql: str, start: datetime, end: datetime, timescaledb: bool) -> str:
    original = sql

    def replace(match: re.Match[str]) -> str:
        name, args = match[1], [arg.strip(" ") for arg in match[2].split(",")]
        # Grafana before 5.3 aliased $__timeGroup itself; Grafana still does when the first
        # occurrence of the same call text is followed directly by a comma.
        if name == "__timeGroup":
            at = original.find(match[0]) + len(match[0])
            if original[at:at + 1] == ",":
                name = "__timeGroupAlias"
        return _macro(name, args, match[0], start, end, timescaledb)

    return _MACRO.sub(replace, sql)


def _macro(name: str, args: list[str], call: str, start: datetime, end: datetime, timescaledb: bool) -> str:
    if name in ("__timeFrom", "__timeTo", "__unixEpochNanoFrom", "__unixEpochNanoTo"):
        if args != [""]:
            raise MacroError(f"{call}: ${name}() takes no arguments")
        moment = start if name.endswith("From") else end
        return f"'{_rfc3339(moment)}'" if name.startswith("__time") else str(_unix_nano(moment))
    if name in ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter"):
        column = _one_column(name, args, call)
        if name == "__time":
            return f'{column} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {column}) as "time"'
        if name == "__timeFilter":
            return f"{column} BETWEEN '{_rfc3339(start)}' AND '{_rfc3339(end)}'"
        nano = name == "__unixEpochNanoFilter"
        low, high = (_unix_nano(start), _unix_nano(end)) if nano else (_unix(start), _unix(end))
        return f"{column} >= {low} AND {column} <= {high}"
    if name in ("__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias"):
        column, seconds = _group_args(name, args, call)
        if name.startswith("__unixEpoch"):
            text = f"floor(({column})/{_go_float(seconds)})*{_go_float(seconds)}"
        elif timescaledb:
            text = f"time_bucket('{seconds:.3f}s',{column})"
        else:
            text = f"floor(extract(epoch from {column})/{_go_float(seconds)})*{_go_float(seconds)}"
        return text + ' AS "time"' if name.endswith("Alias") else text
    raise MacroError(f"unknown macro ${name} in {call}")


def _one_column(name: str, args: list[str], call: str) -> str:
    if len(args) != 1 or not args[0]:
        raise MacroError(f"{call}: ${name} takes exactly one time column, got {len(args)} argument(s)")
    return args[0]


def _group_args(name: str, args: list[str], call: str) -> tuple[str, float]:
    if not 2 <= len(args) <= 3 or not args[0]:
        raise MacroError(f"{call}: ${name} takes a time column, an interval and an optional fill value")
    seconds = _group_interval_seconds(args[1], call)
    if len(args) == 3 and args[2] not in ("NULL", "previous") and not _FILL_NUMBER.fullmatch(args[2]):
        raise MacroError(f"{call}: fill value {args[2]!r} is not NULL, previous or a number")
    return args[0], seconds


def _group_interval_seconds(arg: str, call: str) -> float:
    """Parse a $__timeGroup interval as Grafana does: quotes trimmed; d, w, M, y by the calendar; else Go."""
    text = arg.strip("'")
    date = _DATE_UNIT.fullmatch(text)
    ns: int | None
    if date:
        count, unit = int(date[1]), date[2]
        if unit in "dw":
            ns = count * (7 if unit == "w" else 1) * 86_400 * 10**9
        else:  # months and years: calendar arithmetic from the server's clock, as Grafana does
            now = datetime.now(UTC)
            months = count * (12 if unit == "y" else 1)
            year, month = divmod(now.month - 1 + months, 12)
            year += now.year
            day = min(now.day, calendar.monthrange(year, month + 1)[1])
            later = now.replace(year=year, month=month + 1, day=day)
            ns = (later - now) // timedelta(microseconds=1) * 1_000
    else:
        ns = _go_duration_ns(text)
    if ns is None or ns <= 0:
        raise MacroError(f"{call}: interval {arg!r} is not a positive duration such as '5m', '1h' or '1d'")
    return ns / 10**9


def _go_duration_ns(text: str) -> int | None:
    """Parse Go's time.ParseDuration syntax (e.g. 1h30m, 1.5s, 300ms) to nanoseconds; None if invalid."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in "+-" and text else text
    if body == "0":
        return 0
    if not body:
        return None
    total, at = Decimal(0), 0
    while at < len(body):
        part = _GO_DURATION_PART.match(body, at)
        if part is None or not (part[1] or part[2]):
            return None
        number = Decimal(f"{part[1] or '0'}.{part[2] or '0'}")
        total += number * _GO_NS[part[3]]
        at = part.end()
    return sign * int(total)


def _go_float(value: float) -> str:
    """Format like Go's %v for a float64: shortest digits, exponent form from 1e+06 up or below 1e-04."""
    if value == 0:
        return "0"
    normal = Decimal(repr(value)).normalize()
    digits = "".join(str(d) for d in normal.as_tuple().digits)
    exponent = len(digits) + int(normal.as_tuple().exponent) - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{'-' if value < 0 else ''}{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    return format(normal, "f")
