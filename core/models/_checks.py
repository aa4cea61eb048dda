"""Argument checks shared by the model constructors and ``presets.validate_config``.

Every check raises :class:`core.errors.UserError` naming the argument and showing the bad value.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from core.errors import UserError

__all__ = []


def check_int(name, value, minimum=None):
    """Return ``value`` as an int, or raise UserError if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        if isinstance(value, Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            raise UserError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise UserError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_float(name, value, minimum=None, maximum=None, *, open_min=False, open_max=False):
    """Return ``value`` as a finite float within the bounds, or raise UserError."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise UserError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise UserError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if open_min else value < minimum):
        raise UserError(f"{name} must be {'>' if open_min else '>='} {minimum}, got {value}")
    if maximum is not None and (value >= maximum if open_max else value > maximum):
        raise UserError(f"{name} must be {'<' if open_max else '<='} {maximum}, got {value}")
    return value


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``, or raise UserError listing them."""
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_bool(name, value):
    """Return ``value`` if it is a bool, or raise UserError."""
    if not isinstance(value, bool):
        raise UserError(f"{name} must be true or false, got {value!r}")
    return value


def check_filters(name, value):
    """Return ``value`` as a tuple of positive ints (one per conv block), or raise UserError."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise UserError(f"{name} must be a list of positive integers, got {value!r}")
    out = tuple(check_int(f"{name}[{i}]", v, 1) for i, v in enumerate(value))
    if not out:
        raise UserError(f"{name} must name at least one block, got {value!r}")
    return out


def check_image_size(image_size, n_down, *, name="image_size"):
    """Return ``image_size`` if ``n_down`` stride-2 blocks can take it, or raise UserError."""
    image_size = check_int(name, image_size, 1)
    factor = 2**n_down
    if image_size % factor or image_size // factor < 1:
        raise UserError(
            f"{name} must be a positive multiple of {factor} (2**{n_down} for {n_down} "
            f"stride-2 blocks), got {image_size}"
        )
    return image_size
