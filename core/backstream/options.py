"""Validation of plugin options (``str -> str`` maps from the command line or a job file).

Plugins call these so that every bad option reads the same: one line naming plugin, key and range.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from backstream.errors import ConfigError


def check_options(plugin: str, options: Mapping[str, object], known: Iterable[str]) -> None:
    """Refuse any key of ``options`` that is not in ``known`` (a typo must not pass silently)."""
    allowed = tuple(known)
    for key in options:
        if key not in allowed:
            raise ConfigError(f"{plugin} has no option {key!r} (options: {', '.join(allowed)})")


def int_option(plugin: str, options: Mapping[str, object], key: str, default: int, low: int, high: int) -> int:
    """``options[key]`` as an integer in ``low..high`` (``default`` when absent); strings and ints
    are accepted, anything else (bools included) is a ConfigError."""
    raw = options.get(key)
    if raw is None:
        return default
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{plugin} {key} must be an integer from {low} to {high}, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{plugin} {key} must be an integer from {low} to {high}, not {value}")
    return value
