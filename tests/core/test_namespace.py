"""The public ``backstream`` namespace comes from one table (``_LAZY``), and optional capabilities
of sources are typed protocols checked with isinstance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import backstream
from backstream import ContentTap, DumpsFiles, NamedDump, RestoresFiles, SizedSource
from backstream.jobs.common import source_factory
from backstream.plugins import Plugins

ROOT = Path(__file__).resolve().parents[2]


def test_the_type_checking_block_is_generated_from_the_table() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_namespace.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_every_public_name_resolves_and_all_is_the_table() -> None:
    table = backstream._LAZY
    assert backstream.__all__ == sorted(table)
    assert dir(backstream) == sorted(table)
    for name, module in table.items():
        value = getattr(backstream, name)
        assert value is getattr(sys.modules[module], name), name


def test_importing_backstream_imports_none_of_its_submodules() -> None:
    code = "import sys, backstream; print(sorted(m for m in sys.modules if m.startswith('backstream.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def opened(url: str) -> object:
    _, factory = source_factory(Plugins.load(autoload=False), url)
    return factory.open(url, {})


def test_sources_declare_their_optional_capabilities_through_protocols(tmp_path: Path) -> None:
    capabilities = (ContentTap, DumpsFiles, NamedDump, RestoresFiles, SizedSource)

    def has(source: object) -> set[str]:
        return {capability.__name__ for capability in capabilities if isinstance(source, capability)}

    assert has(opened(f"sqlite://{tmp_path}/x.db")) == {"NamedDump", "SizedSource"}
    assert has(opened("postgresql://u@localhost/db")) == {"ContentTap", "DumpsFiles", "RestoresFiles", "SizedSource"}
    assert has(opened("mysql://u@localhost/db")) == set()
