"""The package metadata users install from: extras that every pip resolves."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]


def test_the_all_extra_names_no_extra_of_backstream_itself() -> None:
    """pip 23.2 (bundled with Python 3.11) fails on ``-e '.[all]'`` when ``all`` refers to the project."""
    assert not [requirement for requirement in EXTRAS["all"] if requirement.startswith("backstream")]


def test_the_all_extra_is_exactly_the_union_of_the_feature_extras() -> None:
    features = {name: deps for name, deps in EXTRAS.items() if name not in ("all", "test")}
    assert sorted(EXTRAS["all"]) == sorted({dep for deps in features.values() for dep in deps})
