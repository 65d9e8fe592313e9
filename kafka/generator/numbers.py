"""Where the generic model draws a number from: the contract's bounds (``minimum``, ``maximum`` and their
exclusive forms), narrowed by the event type's range rules and by the Spark type (``"x-spark-type":
"decimal(p,s)"``: s decimals, at most p-s digits before the point). Values are integers in units of
``10**-scale``, so that every value drawn has exactly ``scale`` decimals and lies within the bounds."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lakehouse.config.specs import RangeRule
from lakehouse.kafka.generator.patterns import UnsupportedError

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_INTEGER_LIMITS = {"tinyint": 2**7 - 1, "smallint": 2**15 - 1, "int": 2**31 - 1, "bigint": 2**63 - 1}
# the width of the range drawn from where a side is unbounded: 0..1000, or 1000 beyond the one bound
UNBOUNDED_SPAN = 1000
# plain numbers (doubles) get the fewest decimals, from 2, that the bounds leave room for
_DOUBLE_SCALES = range(2, 7)


@dataclass(frozen=True)
class NumericRange:
    """Values of a numeric field as integers in units of 10**-scale (bounds inclusive)."""

    scale: int
    integer: bool
    low: int
    high: int
    # the contract's minimum and maximum, for out_of_range (Silver enforces these, not the exclusive forms)
    contract_low: int | None
    contract_high: int | None
    breaks_rule: list[tuple[int, int]]  # intervals outside the range rules that the contract accepts

    def value(self, units: int) -> int | float:
        """The JSON number of ``units``: an int for integer fields, else a float with ``scale`` decimals."""
        return units if self.integer else units / 10**self.scale


def numeric_range(prop: dict[str, Any], json_type: str, rules: list[RangeRule]) -> NumericRange:
    """The range of a property of JSON type ``integer`` or ``number``, with the range rules on its column."""
    spark_type = str(prop.get("x-spark-type", "")).lower()
    decimal = _DECIMAL.match(spark_type)
    integer = json_type == "integer"
    limit = _INTEGER_LIMITS.get(spark_type or "bigint") if integer else None
    scales: list[int] | range = [0] if integer else _DOUBLE_SCALES
    if decimal:
        digits, decimals = int(decimal.group(1)), int(decimal.group(2))
        scales = [0 if integer else decimals]
        limit = 10 ** (digits - decimals) - 1 if integer else 10**digits - 1
    for scale in scales:
        minimum = _units(prop.get("minimum"), scale, up=True)
        maximum = _units(prop.get("maximum"), scale, up=False)
        c_low, c_high = minimum, maximum
        if "exclusiveMinimum" in prop:
            c_low = _max(c_low, math.floor(Decimal(str(prop["exclusiveMinimum"])) * 10**scale) + 1)
        if "exclusiveMaximum" in prop:
            c_high = _min(c_high, math.ceil(Decimal(str(prop["exclusiveMaximum"])) * 10**scale) - 1)
        r_low = _max(*(_units(r.min, scale, up=True) for r in rules))
        r_high = _min(*(_units(r.max, scale, up=False) for r in rules))
        span = UNBOUNDED_SPAN * 10**scale
        floor, ceiling = _max(c_low, None if limit is None else -limit), _min(c_high, limit)
        low, high = _max(c_low, r_low), _min(c_high, r_high)
        if limit is not None:  # within the Spark type before an unbounded side is filled in from the other
            low = None if low is None else max(low, -limit)
            high = None if high is None else min(high, limit)
        if low is None:
            low = 0 if high is None or high >= 0 else high - span
        if high is None:
            high = low + span
        if limit is not None:
            low, high = max(low, -limit), min(high, limit)
        if low > high:
            continue
        breaks = []
        if r_low is not None:
            lowest = r_low - span if floor is None else max(floor, r_low - span)
            if lowest <= r_low - 1:
                breaks.append((lowest, r_low - 1))
        if r_high is not None:
            highest = r_high + span if ceiling is None else min(ceiling, r_high + span)
            if r_high + 1 <= highest:
                breaks.append((r_high + 1, highest))
        return NumericRange(scale, integer, low, high, minimum, maximum, breaks)
    raise UnsupportedError(f"no {json_type} with {scales[-1]} decimal(s) lies within its bounds and range rules")


def _units(bound: float | None, scale: int, up: bool) -> int | None:
    """An inclusive bound in units of 10**-scale, rounded inwards."""
    if bound is None:
        return None
    scaled = Decimal(str(bound)) * 10**scale
    return math.ceil(scaled) if up else math.floor(scaled)


def _max(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _min(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None
