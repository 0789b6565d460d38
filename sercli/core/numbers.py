"""Every numeric option of every command checked up front, in one line that names the option
and the value: ``--lr inf: expected a finite number > 0``. The CLI wraps each command with
`checked`; what one option needs beyond a finite number is in `RULES`."""

from __future__ import annotations

import functools
import inspect
import math
import typing
from typing import Any, Callable

from sercli.core.errors import SercliError

SEED_MAX = 2**32 - 1  # numpy's seeds (torch's reach further)

# option -> (the smallest value, whether it is allowed, the largest or None) beyond a finite number;
# a learning rate of 0 trains nothing, a negative one climbs the loss.
RULES: dict[str, tuple[float, bool, float | None]] = {
    "--lr": (0.0, False, None),
    "--backbone-lr": (0.0, False, None),
    "--seed": (0, True, SEED_MAX),
    "--seeds": (0, True, SEED_MAX),
}


def check_number(option: str, value: Any) -> None:
    """SercliError unless ``value`` (an int or a float) is finite and within ``RULES[option]``."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, inclusive, high = RULES.get(option, (None, True, None))
    integer = isinstance(value, int)
    shown = str(value) if integer else f"{value:g}"
    form = str if integer else (lambda x: f"{x:g}")
    bound = "" if low is None else f" {'>=' if inclusive else '>'} {form(low)}"
    bound += "" if high is None else f" and <= {form(high)}"
    what = f"a finite number{bound}" if not integer else f"an integer{bound}"
    if not integer and not math.isfinite(value):
        raise SercliError(f"{option} {shown}: expected {what}")
    if low is not None and (value < low or (value == low and not inclusive)) or high is not None and value > high:
        raise SercliError(f"{option} {shown}: expected {what}")


def option_names(fn: Callable) -> dict[str, str]:
    """parameter -> its option as the user types it (``weight_decay`` -> ``--weight-decay``)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    out = {}
    for name in inspect.signature(fn).parameters:
        decls = [d for meta in getattr(hints.get(name), "__metadata__", ())
                 for d in getattr(meta, "param_decls", None) or () if isinstance(d, str)]
        longest = [d for d in decls if d.startswith("--")]
        out[name] = longest[0] if longest else decls[0] if decls else "--" + name.replace("_", "-")
    return out


def checked(fn: Callable) -> Callable:
    """``fn`` with each numeric argument checked (`check_number`) before it runs."""
    names = None

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        nonlocal names
        if names is None:
            names = option_names(fn)
        for key, value in kwargs.items():
            check_number(names.get(key, key), value)
        return fn(*args, **kwargs)

    return run
