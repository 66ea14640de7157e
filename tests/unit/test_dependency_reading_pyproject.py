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
