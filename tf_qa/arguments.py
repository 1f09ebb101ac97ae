"""Command-line value types: a value out of range is a usage error naming the value, never a traceback.

Example:

>>> parser = argparse.ArgumentParser(prog="demo")
>>> _ = parser.add_argument("--questions", type=positive_int)
>>> parser.parse_args(["--questions", "5"]).questions
5
"""

from __future__ import annotations

import argparse


def _number(kind, minimum):
    """An argparse type: a ``kind`` (int or float) of at least ``minimum``, refused with a usage error otherwise."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {text}")
        return value

    parse.__name__ = f"{kind.__name__} >= {minimum}"
    return parse


positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
positive_float = _number(float, 1e-9)
non_negative_float = _number(float, 0.0)


def port_number(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535; got {value}")
    return value
