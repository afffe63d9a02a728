"""Costs in USD as JSON output shows them: rounded to 6 decimals (a millionth of a
dollar), so a sum of floats prints as 0.000896, not 0.0008960000000000001."""

from __future__ import annotations

from typing import Annotated

from pydantic import PlainSerializer

__all__ = ["COST_DECIMALS", "JSONCost", "json_cost"]

COST_DECIMALS = 6


def json_cost(value: float | None) -> float | None:
    """`value` rounded to `COST_DECIMALS`; None stays None."""
    return None if value is None else round(value, COST_DECIMALS)


JSONCost = Annotated[float | None, PlainSerializer(json_cost, when_used="json")]
"""A cost field of a pydantic model that is only ever output (never stored):
full precision in Python, rounded in JSON. Stored records keep the exact value
and are rounded where they are printed (`json_cost`)."""
