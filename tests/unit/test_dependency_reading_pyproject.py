"""pyproject.toml dependencies: PEP 621 tables, PEP 735 groups (as uv and click write them)."""

from __future__ import annotations

from codefactory.advisories import rewrite_pin
from codefactory.advisories.pyproject import parse_pyproject

# the shape of pallets/click's pyproject.toml (PEP 735 groups including each other)
CLICK_LIKE = """\
[project]
name = "click"
version = "8.2.0"
requires-python = ">=3.10"
dependencies = ["colorama; platform_system == 'Windows'"]

[project.optional-dependencies]
socks = ['PySocks==1.7.1; sys_platform != "win32"']

[dependency-groups]
dev = [
    "ruff",
    "tox",
    "tox-uv",
    {include-group = "tests"},
]
docs = [
    "myst-parser",
    "pallets-sphinx-themes",
    "sphinx==8.1.3",
]
tests = [
    "pytest==8.3.3",
    'jinja2==3.1.4 ; python_version >= "3.9"',
]
typing = [
    {include-group = "tests"},
    "mypy==1.13.0",
]

[tool.uv]
constraint-dependencies = ["urllib3==1.26.5"]
"""


def test_pep621_and_pep735_pins_with_markers_and_includes() -> None:
    parsed = parse_pyproject("pyproject.toml", CLICK_LIKE)
    assert parsed.problems == ()
    assert [(p.name, p.version, p.line, p.marker) for p in parsed.pins] == [
        ("PySocks", "1.7.1", 8, 'sys_platform != "win32"'),
        ("sphinx", "8.1.3", 20, ""),
        ("pytest", "8.3.3", 23, ""),
        ("jinja2", "3.1.4", 24, 'python_version >= "3.9"'),
        ("mypy", "1.13.0", 28, ""),
        ("urllib3", "1.26.5", 32, ""),
    ]
    assert [u.requirement for u in parsed.unpinned][:2] == [
        "colorama; platform_system == 'Windows'",
        "ruff",
    ]


def test_a_group_pin_is_rewritten_in_place() -> None:
    out = rewrite_pin("pyproject.toml", CLICK_LIKE, "Jinja2", "3.1.5")
    assert out == CLICK_LIKE.replace("jinja2==3.1.4 ;", "jinja2==3.1.5 ;")


def test_invalid_groups_are_named_as_pep_735_requires() -> None:
    text = """\
[dependency-groups]
a = [{include-group = "b"}]
b = [{include-group = "a"}, "idna==3.6"]
c = [{include-group = "nope"}, {path = "."}, 3]
"""
    reasons = [p.reason for p in parse_pyproject("pyproject.toml", text).problems]
    assert any("a cycle" in r for r in reasons)
    assert any("unknown group 'nope'" in r for r in reasons)
    assert any("{'path': '.'}" in r for r in reasons)
    assert any("3 is neither" in r for r in reasons)


def test_not_toml_names_the_line() -> None:
    [problem] = parse_pyproject("sub/pyproject.toml", '[project]\nname = "x\n').problems
    assert problem.file == "sub/pyproject.toml" and problem.line == 2
    assert "not valid TOML" in problem.reason


def test_url_and_vcs_dependencies_are_unpinned_not_dropped() -> None:
    text = """\
[project]
name = "x"
version = "1"
dependencies = [
  "click @ git+https://github.com/pallets/click@8.1.7",
  "wheel @ https://files.example/wheel-0.42.0-py3-none-any.whl",
  "idna~=3.6",
]
"""
    parsed = parse_pyproject("pyproject.toml", text)
    assert [(u.kind, u.line) for u in parsed.unpinned] == [("vcs", 5), ("url", 6), ("range", 7)]


# Poetry's own tables (the shape of python-poetry/cleo's pyproject.toml, with exact pins)
POETRY = """\
[tool.poetry]
name = "cleo"
version = "2.1.0"

[tool.poetry.dependencies]
python = "^3.7"
crashtest = "^0.4.1"
requests = "2.19.1"
idna = { version = "==3.6", extras = ["codec"] }
click = { git = "https://github.com/pallets/click.git", tag = "8.1.7" }

[tool.poetry.group.dev.dependencies]
mypy = [
    { version = "1.4.1", python = "<3.8" },
    { version = "^1.5", python = ">=3.8" },
]

[tool.poetry.dependencies.urllib3]
version = "1.26.5"
"""


def test_poetry_tables_exact_versions_are_pins_the_rest_unpinned() -> None:
    parsed = parse_pyproject("pyproject.toml", POETRY)
    assert parsed.problems == ()
    assert [(p.name, p.version, p.line) for p in parsed.pins] == [
        ("requests", "2.19.1", 8),
        ("idna", "3.6", 9),
        ("urllib3", "1.26.5", 19),
        ("mypy", "1.4.1", 13),
    ]
    assert [(u.requirement, u.kind) for u in parsed.unpinned] == [
        ("crashtest ^0.4.1", "range"),
        ("click", "vcs"),
        ("mypy ^1.5", "range"),
    ]


def test_poetry_pins_are_rewritten_in_place() -> None:
    out = rewrite_pin("pyproject.toml", POETRY, "idna", "3.7")
    out = rewrite_pin("pyproject.toml", out, "requests", "2.32.3")
    out = rewrite_pin("pyproject.toml", out, "urllib3", "1.26.18")
    assert out == POETRY.replace('"==3.6"', '"==3.7"').replace('"2.19.1"', '"2.32.3"').replace(
        '"1.26.5"', '"1.26.18"'
    )
