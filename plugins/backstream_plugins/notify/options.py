"""Reading a ``[notifiers.NAME]`` table's options: one wording for every mistake, and secrets
from a file or the environment rather than the schedule file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from backstream import ConfigError


class NotifierOptions:
    """The options of one notifier table, consumed key by key; ``done()`` refuses the rest."""

    def __init__(self, kind: str, options: Mapping[str, Any]) -> None:
        self.kind = kind
        self._left = dict(options)

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self._left.pop(key, default)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string")
        return value

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise ConfigError(f"{key}: missing (a {self.kind} notifier needs it)")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._left.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{key}: must be a positive number")
        return float(value)

    def count(self, key: str, default: int) -> int:
        value = self._left.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key}: must be a whole number, 0 or more")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._left.pop(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false")
        return value

    def texts(self, key: str) -> list[str]:
        value = self._left.pop(key, None)
        if isinstance(value, str):
            value = [value]
        if not value or not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{key}: missing, or not a list of strings")
        return value

    def secret(self, key: str) -> str | None:
        """``KEY_env`` (an environment variable's name) or ``KEY_file`` (a file's path), read now;
        a plain ``KEY`` works too, for tests and throwaway setups."""
        plain, env, path = self.text(key), self.text(f"{key}_env"), self.text(f"{key}_file")
        if sum(v is not None for v in (plain, env, path)) > 1:
            raise ConfigError(f"{key}: give one of {key}, {key}_env and {key}_file")
        if env is not None:
            if env not in os.environ:
                raise ConfigError(f"{key}_env: the environment variable {env} is not set")
            return os.environ[env]
        if path is not None:
            try:
                with open(path) as handle:
                    return handle.read().strip()
            except OSError as exc:
                raise ConfigError(f"{key}_file: cannot read {path}: {exc.strerror or exc}") from None
        return plain

    def done(self) -> None:
        if self._left:
            raise ConfigError(f"unknown option(s) for a {self.kind} notifier: {', '.join(sorted(self._left))}")
