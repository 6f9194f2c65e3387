"""Argument types for every job's command line: numbers that refuse, at parse time, the values no run can
mean (a negative count, a zero where one is needed, a share outside [0, 1], an infinite rate), so that
argparse exits 2 with a message naming the option before the job reads anything. `Range` states such a
bound once, for a parser's type and for a config checked in code alike.

Beam-free and dependency-free: the trainer's command line uses it without importing Beam."""
from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Range:
    """The finite numbers from low to high (None: unbounded that side), each end included unless open."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


def _parsed(kind: type, text: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"not {text!r}") from None


def _number_in(kind: type, bounds: Range) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = _parsed(kind, text)
        if value not in bounds:
            raise argparse.ArgumentTypeError(f"must be {bounds}, not {text}")
        return value
    parse.__name__ = f"{kind.__name__} {bounds}"
    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argument type: an integer >= minimum."""
    return _number_in(int, Range(minimum))


def float_in(low: float | None = None, high: float | None = None, *, low_open: bool = False,
             high_open: bool = False) -> Callable[[str], float]:
    """An argument type: a finite number in Range(low, high, low_open, high_open)."""
    return _number_in(float, Range(low, high, low_open, high_open))


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
seed = non_negative_int                      # numpy and SentencePiece refuse negative seeds
positive_float = float_in(0, low_open=True)
non_negative_float = float_in(0)
fraction = float_in(0, 1)                    # a share or a probability, both ends meant
open_fraction = float_in(0, 1, low_open=True, high_open=True)


def percentile_pair(text: str) -> tuple[float, float]:
    """An argument type: two increasing percentiles strictly between 0 and 100, as `30,60`."""
    values = tuple(_parsed(float, part.strip()) for part in text.split(","))
    if len(values) != 2 or not 0 < values[0] < values[1] < 100:
        raise argparse.ArgumentTypeError(f"expected two increasing numbers between 0 and 100 (e.g. 30,60), "
                                         f"not {text!r}")
    return values
