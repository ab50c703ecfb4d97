"""The plugin-author tutorial in docs/plugins.md shows the sample plugin's own code: each code block
of it is tagged with a file of tests/sample_plugin/ and must be a run of whole lines of that file,
so the page cannot drift from the code the tests run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "plugins.md"
HEADING = "## Write an engine plugin with an archive and a command"
SAMPLE = "tests/sample_plugin/"
PACKAGE = SAMPLE + "backstream_sample_plugin/"
BLOCK = re.compile(r"^```(\S*)(?: (\S+))?\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def tutorial() -> str:
    text = DOCS.read_text()
    assert HEADING in text, f"docs/plugins.md lacks the section {HEADING!r}"
    section = text.split(HEADING + "\n", 1)[1]
    return section.split("\n## ", 1)[0]  # up to the next section, if any


def blocks() -> list[tuple[str, str | None, str]]:
    return [(match[1], match[2], match[3]) for match in BLOCK.finditer(tutorial())]


CODE = [(path, body) for language, path, body in blocks() if language in ("python", "toml")]


def test_every_code_block_of_the_tutorial_names_a_file_of_the_sample() -> None:
    for language, path, _ in blocks():
        if language == "console":
            continue
        assert language in ("python", "toml"), f"a {language!r} block in the tutorial"
        assert path is not None and path.startswith(SAMPLE), f"a {language} block names no sample file"
        assert (ROOT / path).is_file(), path


@pytest.mark.parametrize(("path", "body"), CODE, ids=[f"{i}-{Path(p or '').name}" for i, (p, _) in enumerate(CODE)])
def test_each_code_block_is_a_run_of_whole_lines_of_its_file(path: str | None, body: str) -> None:
    assert path is not None
    text = (ROOT / path).read_text()
    assert body.strip(), f"an empty block for {path}"
    assert ("\n" + body) in ("\n" + text), f"the tutorial's block of {path} is not in the file as it stands:\n{body}"


def test_the_tutorial_covers_every_module_of_the_sample_engine() -> None:
    shown = {path for path, _ in CODE}
    modules = {f"{PACKAGE}{name}.py" for name in ("__init__", "store", "source", "archive", "command")}
    assert modules | {SAMPLE + "pyproject.toml"} <= shown


def test_the_tutorial_shows_every_method_of_the_archive_and_the_command() -> None:
    code = "\n".join(body for _, body in CODE)
    for member in ("parse_record", "holes", "window", "prune", "fetch", "configure", "run", "check"):
        assert f"def {member}(" in code, member
    for hook in ("backstream_register_sources", "backstream_register_archives", "backstream_register_commands"):
        assert f"def {hook}(" in code, hook
