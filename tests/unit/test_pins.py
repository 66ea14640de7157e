"""Finding and rewriting exact pins without touching anything but the version."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.advisories import Pin, RequirementsInvalid, find_pins, rewrite_pin

REQUIREMENTS = """\
# production pins
-r base.txt
--index-url https://pypi.org/simple
idna==3.6  # pinned for CVE triage
Requests[socks,security] == 2.31.0 ; python_version >= "3.8"
flask>=2.0
urllib3==2.*
certifi===2024.2.2
./local-package
git+https://github.com/pallets/click@8.1.7#egg=click
pkg-with-hash==1.0 \\
    --hash=sha256:abcdef
typing_extensions==4.9.0;python_version<"3.11"
"""

PYPROJECT = """\
[build-system]
requires = ["hatchling==1.21.0"]

[project]
name = "demo"
version = "0.1.0"
description = "idna==3.6 is not a dependency here"
dependencies = [
    "idna==3.6",   # keep this comment
    'requests[socks]==2.31.0; python_version >= "3.8"',
    "flask>=2",
]

[project.optional-dependencies]
dev = ["pytest==8.0.0", "idna==3.6"]

[tool.uv]
override-dependencies = ["idna==3.6"]
"""


def test_requirements_pins_found_with_lines() -> None:
    pins = find_pins("requirements.txt", REQUIREMENTS)
    assert pins == [
        Pin(file="requirements.txt", name="idna", version="3.6", line=4),
        Pin(file="requirements.txt", name="Requests", version="2.31.0", line=5),
        Pin(file="requirements.txt", name="certifi", version="2024.2.2", line=8),
        Pin(file="requirements.txt", name="pkg-with-hash", version="1.0", line=11),
        Pin(file="requirements.txt", name="typing_extensions", version="4.9.0", line=13),
    ]


def test_requirements_rewrite_changes_only_the_version() -> None:
    out = rewrite_pin("requirements.txt", REQUIREMENTS, "idna", "3.7")
    assert out == REQUIREMENTS.replace("idna==3.6  #", "idna==3.7  #")
    out = rewrite_pin("requirements-dev.txt", REQUIREMENTS, "requests", "2.32.0")
    assert 'Requests[socks,security] == 2.32.0 ; python_version >= "3.8"\n' in out
    out = rewrite_pin("requirements.txt", REQUIREMENTS, "Typing-Extensions", "4.12.0")
    assert 'typing_extensions==4.12.0;python_version<"3.11"\n' in out
    assert rewrite_pin("requirements.txt", REQUIREMENTS, "flask", "9") == REQUIREMENTS


def test_rewrite_only_the_named_version() -> None:
    text = 'foo==1.0; python_version < "3.9"\nfoo==2.0; python_version >= "3.9"\n'
    out = rewrite_pin("requirements.txt", text, "foo", "2.1", only_version="2.0")
    assert out == 'foo==1.0; python_version < "3.9"\nfoo==2.1; python_version >= "3.9"\n'


def test_pyproject_pins_only_from_project_tables() -> None:
    pins = find_pins("pyproject.toml", PYPROJECT)
    assert [(p.name, p.version, p.line) for p in pins] == [
        ("idna", "3.6", 9),
        ("requests", "2.31.0", 10),
        ("pytest", "8.0.0", 15),
        ("idna", "3.6", 15),
        ("idna", "3.6", 18),
    ]


def test_pyproject_rewrite_is_textual() -> None:
    out = rewrite_pin("pyproject.toml", PYPROJECT, "IDNA", "3.7")
    expected = (
        PYPROJECT.replace('"idna==3.6",   #', '"idna==3.7",   #')
        .replace('"pytest==8.0.0", "idna==3.6"', '"pytest==8.0.0", "idna==3.7"')
        .replace('override-dependencies = ["idna==3.6"]', 'override-dependencies = ["idna==3.7"]')
    )
    assert out == expected
    data = tomllib.loads(out)
    assert data["project"]["dependencies"][0] == "idna==3.7"
    assert data["tool"]["uv"]["override-dependencies"] == ["idna==3.7"]
    assert data["project"]["description"] == "idna==3.6 is not a dependency here"


def test_malformed_requirement_is_an_error() -> None:
    with pytest.raises(RequirementsInvalid) as caught:
        find_pins("requirements.txt", "idna==3.6\nthis is not ! a requirement\n")
    assert caught.value.line == 2
    assert caught.value.path == "requirements.txt"


def test_malformed_pyproject_is_an_error() -> None:
    with pytest.raises(RequirementsInvalid):
        find_pins("pyproject.toml", "[project\ndependencies = [")
    with pytest.raises(RequirementsInvalid):
        find_pins("pyproject.toml", '[project]\ndependencies = ["idna=3.6"]\n')


def test_pyproject_without_project_table_has_no_pins() -> None:
    assert find_pins("pyproject.toml", "[tool.ruff]\nline-length = 100\n") == []


NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,6}([-_.][A-Za-z0-9]{1,4})?", fullmatch=True)
VERSIONS = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}", fullmatch=True)
PADDING = st.sampled_from(["", " ", "  "])
COMMENTS = st.sampled_from(["", "  # note", " # idna==0.1"])
MARKERS = st.sampled_from(["", ' ; python_version >= "3.8"', ';sys_platform=="linux"'])
EXTRAS = st.sampled_from(["", "[socks]", "[a,b]"])


@given(
    name=NAMES,
    old=VERSIONS,
    new=VERSIONS,
    pad=PADDING,
    extras=EXTRAS,
    marker=MARKERS,
    comment=COMMENTS,
)
def test_requirement_line_round_trip(
    name: str, old: str, new: str, pad: str, extras: str, marker: str, comment: str
) -> None:
    line = f"{name}{extras}{pad}=={pad}{old}{marker}{comment}"
    text = f"# header\n{line}\nother-package==9.9\n"
    pin = find_pins("requirements.txt", text)[0]  # NAMES cannot spell other-package
    assert (pin.name, pin.version, pin.line) == (name, old, 2)
    out = rewrite_pin("requirements.txt", text, name.upper(), new)
    assert (
        out == f"# header\n{name}{extras}{pad}=={pad}{new}{marker}{comment}\nother-package==9.9\n"
    )
    assert rewrite_pin("requirements.txt", out, name, old) == text


@given(name=NAMES, old=VERSIONS, new=VERSIONS, quote=st.sampled_from(['"', "'"]))
def test_pyproject_round_trip(name: str, old: str, new: str, quote: str) -> None:
    text = f"[project]\nname = 'x'\ndependencies = [\n  {quote}{name}=={old}{quote},\n]\n"
    [pin] = find_pins("pyproject.toml", text)
    assert (pin.name, pin.version, pin.line) == (name, old, 4)
    out = rewrite_pin("pyproject.toml", text, name, new)
    assert tomllib.loads(out)["project"]["dependencies"] == [f"{name}=={new}"]
    assert rewrite_pin("pyproject.toml", out, name, old) == text
