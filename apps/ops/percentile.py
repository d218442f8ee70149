"""A percentile aggregate: PERCENTILE_CONT on PostgreSQL, a registered function on SQLite."""

from __future__ import annotations

import math
from typing import Any

from django.db.models import Aggregate, FloatField

SQLITE_FUNCTION = "SLUICE_PERCENTILE"


class Percentile(Aggregate):
    """Continuous percentile (linear interpolation), e.g. ``Percentile("duration_ms", 0.95)``."""

    function = "PERCENTILE_CONT"
    name = "Percentile"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # The embedded default runs on SQLite, which has no ordered-set aggregates: call the
        # function sqlite_register_percentile adds to every connection. A copy, because
        # Aggregate.as_sql also passes ``template`` when there is a FILTER clause.
        clone = self.copy()
        clone.function = SQLITE_FUNCTION
        clone.template = "%(function)s(%(expressions)s, %(fraction)s)"
        return super(Percentile, clone).as_sql(compiler, connection, **extra_context)


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """The value PostgreSQL's PERCENTILE_CONT returns for these values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _SqlitePercentile:
    """SQLite aggregate class behind ``SLUICE_PERCENTILE(value, fraction)``."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        self.fraction = fraction
        if value is not None:
            self.values.append(value)

    def finalize(self) -> float | None:
        return percentile_cont(self.values, self.fraction)


def sqlite_register_percentile(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: teach each new SQLite connection the percentile."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate(SQLITE_FUNCTION, 2, _SqlitePercentile)
