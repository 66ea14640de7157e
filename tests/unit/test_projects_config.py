"""The repository config: the documented schema is read, and every key outside it (above all
one that would widen authority) is refused by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codefactory.projects.config import (
    AUTHORITY_KEYS,
    FACTORY_CHECKS,
    RepositoryConfigInvalid,
    parse_config,
    read_config,
)
from codefactory.projects.detect import detect_project
from codefactory.projects.files import resolve_inside
from codefactory.projects.model import CustomCheck
from codefactory.verify import compose


class Files:
    """A committed tree held in memory (the `FileSource` port), with symbolic links."""

    def __init__(self, files: dict[str, bytes], links: dict[str, str] | None = None) -> None:
        self.files = files
        self.links = links or {}

    def paths(self) -> list[str]:
        return sorted({*self.files, *self.links})

    def read(self, path: str) -> bytes | None:
        resolved = resolve_inside(path, self.links, set(self.files))
        return None if resolved is None else self.files[resolved]

    def is_link(self, path: str) -> bool:
        return path in self.links


FULL = b"""\
python = "3.12"

[setup]
commands = ["apt-get --version", "make deps"]
replace = true

[test]
command = "pytest -x tests/unit"
paths = ["tests/unit"]

[checks]
skip = ["lint"]

[[checks.add]]
name = "typing"
command = ["mypy", "src"]
"""


def test_the_whole_schema_is_read() -> None:
    config = parse_config(FULL)
    assert config.python == "3.12"
    assert config.setup == ("apt-get --version", "make deps") and config.replace_setup
    assert config.test_command == ("pytest", "-x", "tests/unit")
    assert config.test_paths == ("tests/unit",)
    assert config.skip_checks == frozenset({"lint"})
    assert config.add_checks == (CustomCheck(name="typing", command=("mypy", "src")),)
    assert config.source == ".codefactory/config.toml"


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        (b'[network]\nhosts = ["evil.example"]\n', "network", "would widen authority"),
        (b'[setup]\negress = ["evil.example"]\n', "setup.egress", "would widen authority"),
        (b"rounds = 50\n", "rounds", "would widen authority"),
        (b'paths = ["/"]\n', "paths", "would widen authority"),
        (b'[policy]\nallow = true\n', "policy", "would widen authority"),
        (b'engine = "x"\n', "engine", "would widen authority"),
        (b'[test]\ncomand = "pytest"\n', "test.comand", "is not a known key"),
        (b'[setup]\ncommands = "make"\n', "setup.commands", "has the wrong type"),
        (b'[test]\npaths = ["../elsewhere"]\n', "test.paths", "outside the repository"),
        (b'[checks]\nskip = ["secrets"]\n', "checks.skip", "security checks"),
        (b'[[checks.add]]\nname = "x"\n', "checks.add[0]", "needs both"),
        (b'python = "three"\n', "python", "neither a version"),
        (b"[setup\n", "", "is not valid TOML"),
        (b"python = " + b"[" * 5000 + b"]" * 5000, "", "is nested too deeply"),
        (b'[[checks.add]]\nname = "x/sca"\ncommand = "true"\n', "checks.add[0].name",
         "is not a check name"),
        (b'[[checks.add]]\nname = "../sca"\ncommand = "true"\n', "checks.add[0].name",
         "is not a check name"),
        (b'[[checks.add]]\nname = "Typing"\ncommand = "true"\n', "checks.add[0].name",
         "is not a check name"),
        (b'[[checks.add]]\nname = "-x"\ncommand = "true"\n', "checks.add[0].name",
         "is not a check name"),
        (b'[[checks.add]]\nname = "' + b"a" * 65 + b'"\ncommand = "true"\n',
         "checks.add[0].name", "is not a check name"),
        (b'[[checks.add]]\nname = ""\ncommand = "true"\n', "checks.add[0].name",
         "is not a check name"),
        (b'[[checks.add]]\nname = "sca"\ncommand = "true"\n', "checks.add[0].name",
         "is the name of a factory check"),
    ],
)  # fmt: skip
def test_a_refused_key_is_named(text: bytes, key: str, says: str) -> None:
    with pytest.raises(RepositoryConfigInvalid, match=re.escape(says)) as caught:
        parse_config(text)
    assert caught.value.key == key
    if key:
        assert f"`{key}`" in str(caught.value)


def test_an_added_check_name_is_a_plain_file_name() -> None:
    config = parse_config(
        b'[[checks.add]]\nname = "typing"\ncommand = "mypy"\n'
        b'[[checks.add]]\nname = "a_b-9"\ncommand = "true"\n'
        b'[[checks.add]]\nname = "' + b"a" * 64 + b'"\ncommand = "true"\n'
    )
    assert [c.name for c in config.add_checks] == ["typing", "a_b-9", "a" * 64]


def test_every_factory_check_name_is_refused_for_an_added_check() -> None:
    classes = [getattr(compose, n) for n in dir(compose) if n.endswith("Check") and n != "Check"]
    factory = {cls.name for cls in classes}
    assert len(factory) == 9 and factory <= FACTORY_CHECKS, factory - FACTORY_CHECKS


CONFIG = b'[checks]\nskip = ["tests"]\n'


@pytest.mark.parametrize(
    ("files", "links", "link"),
    [
        ({"ci/config.toml": CONFIG}, {".codefactory": "ci"}, ".codefactory"),
        ({"ci/config.toml": CONFIG}, {".codefactory/config.toml": "../ci/config.toml"},
         ".codefactory/config.toml"),
        ({}, {".codefactory/config.toml": "/etc/codefactory.toml"}, ".codefactory/config.toml"),
    ],
)  # fmt: skip
def test_a_config_reached_through_a_symbolic_link_is_refused(
    files: dict[str, bytes], links: dict[str, str], link: str
) -> None:
    with pytest.raises(RepositoryConfigInvalid, match="is a symbolic link") as caught:
        read_config(Files(files, links))
    assert f"`{link}` is a symbolic link" in str(caught.value)
    project = detect_project(Files({**files, "a.py": b""}, links))
    assert project.config.skip_checks == frozenset() and project.config.source == ""
    assert len(project.problems) == 1 and "symbolic link" in project.problems[0]


def test_a_config_committed_as_a_regular_file_is_read() -> None:
    config = read_config(Files({".codefactory/config.toml": CONFIG}, {"ci": ".codefactory"}))
    assert config.skip_checks == frozenset({"tests"})


def test_detection_reports_an_invalid_config_as_a_problem_and_goes_on() -> None:
    files = {".codefactory/config.toml": b"[sandbox]\negress = true\n", "a.py": b""}
    project = detect_project(Files(files))
    assert project.problems == (
        ".codefactory/config.toml: `sandbox` would widen authority: network hosts, paths, "
        "rounds, engines and limits come from the factory's policy, never from the repository",
    )
    assert project.python is not None and project.config.source == ""


def test_the_docs_document_every_key_and_name_the_refused_ones() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "repository-config.md").read_text()
    for key in ("python", "[setup]", "commands", "replace", "[test]", "command", "paths",
                "[checks]", "skip", "[[checks.add]]", "name"):  # fmt: skip
        assert key in docs, key
    assert "never widen" in docs
    parse_config(docs.split("```toml\n", 1)[1].split("```", 1)[0].encode())
    for key in ("network", "egress", "rounds", "policy", "engine"):
        assert key in AUTHORITY_KEYS and key in docs
