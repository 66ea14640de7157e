"""Python detection: which layout, which setup steps (by absolute sandbox path), which files
decide them, which Python the project asks for. No sandbox: an in-memory tree."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from codefactory.projects.detect import detect_project, setup_plan
from codefactory.projects.files import resolve_inside
from codefactory.projects.model import Project, PythonProject
from codefactory.projects.pyversion import target_version
from codefactory.projects.testenvs import nox_env
from codefactory.sandbox.layout import ENV_DIR, SH, UV

PIP = (UV, "pip", "install", "--python", f"{ENV_DIR}/bin/python")


class Files:
    """A committed tree held in memory (the `FileSource` port), with symbolic links."""

    def __init__(self, files: Mapping[str, str | bytes], links: dict[str, str] | None = None):
        self.files = {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}
        self.links = links or {}

    def paths(self) -> list[str]:
        return sorted({*self.files, *self.links})

    def read(self, path: str) -> bytes | None:
        resolved = resolve_inside(path, self.links, set(self.files))
        return None if resolved is None else self.files[resolved]

    def is_link(self, path: str) -> bool:
        return path in self.links


def detect(files: Mapping[str, str | bytes], links: dict[str, str] | None = None) -> Project:
    return detect_project(Files(files, links))


def python(files: Mapping[str, str | bytes], links: dict[str, str] | None = None) -> PythonProject:
    project = detect(files, links)
    assert project.problems == (), project.problems
    assert project.python is not None
    return project.python


PEP735 = """\
[project]
name = "sample"
version = "1.0"
requires-python = ">=3.12"
dependencies = ["six"]

[project.optional-dependencies]
docs = ["sphinx"]
cli = ["click"]

[dependency-groups]
base = ["pytest>=8"]
test = [{include-group = "base"}, "iniconfig"]
lint = ["ruff"]
checks = [{include-group = "base"}]
"""


def test_a_uv_project_is_synced_locked_with_every_group_and_extra() -> None:
    found = python(
        {
            "pyproject.toml": PEP735,
            "uv.lock": 'version = 1\n[[package]]\nname = "pytest"\n',
            "tests/test_a.py": "",
        }
    )
    assert found.layout == "uv"
    (step,) = found.setup
    assert step.argv == (
        "/usr/bin/env", f"UV_PROJECT_ENVIRONMENT={ENV_DIR}", UV, "sync", "--locked",
        "--all-groups", "--all-extras", "--python", f"{ENV_DIR}/bin/python",
    )  # fmt: skip
    assert "uv.lock" in step.why
    assert found.inputs == ("pyproject.toml", "uv.lock")
    assert (found.python, found.python_source, found.target_version) == (
        ">=3.12", "pyproject.toml requires-python", "py312",
    )  # fmt: skip


def test_a_uv_lock_without_pytest_gets_pytest_when_the_project_has_tests() -> None:
    found = python({"pyproject.toml": PEP735, "uv.lock": 'name = "six"\n', "tests/test_a.py": ""})
    assert found.setup[-1].argv == (*PIP, "pytest")
    assert "none of its files installs pytest" in found.setup[-1].why


def test_pep735_groups_with_include_group_and_test_extras_resolve_together() -> None:
    found = python({"pyproject.toml": PEP735, "tests/test_a.py": ""})
    assert found.layout == "pep621"
    (step,) = found.setup  # pytest comes from the groups: no extra step
    assert step.argv == (*PIP, "-e", ".", "--group", "base", "--group", "test",
                         "--group", "checks")  # fmt: skip
    assert found.inputs == ("pyproject.toml",)


def test_test_extras_are_installed_with_the_project() -> None:
    text = PEP735.replace('cli = ["click"]', 'testing = ["coverage"]\nfoo = ["pytest-cov"]')
    found = python({"pyproject.toml": text})
    assert found.setup[0].argv[len(PIP) : len(PIP) + 2] == ("-e", ".[testing,foo]")


def test_requirements_with_includes_in_subfolders_and_constraints() -> None:
    found = python(
        {
            "requirements.txt": "-r requirements/base.txt\n-c constraints.txt\n",
            "requirements/base.txt": "-r common.txt\nsix\n",
            "requirements/common.txt": "iniconfig\n",
            "constraints.txt": "six==1.16.0\n",
            "constraints-extra.txt": "iniconfig==2.0.0\n",
            "requirements-docs.txt": "sphinx\n",
            "app.py": "",
            "test_app.py": "",
        }
    )
    assert found.layout == "requirements"
    assert found.setup[0].argv == (*PIP, "-r", "requirements.txt", "-c", "constraints-extra.txt")
    assert found.setup[1].argv == (*PIP, "pytest")
    assert found.inputs == (
        "constraints-extra.txt", "constraints.txt", "requirements.txt",
        "requirements/base.txt", "requirements/common.txt",
    )  # fmt: skip


def test_a_requirements_folder_passes_only_the_files_nothing_includes() -> None:
    found = python(
        {
            "requirements/base.txt": "six\n",
            "requirements/test.txt": "-r base.txt\npytest\n",
            "tests/test_a.py": "",
        }
    )
    assert found.setup == (
        found.setup[0].__class__(
            argv=(*PIP, "-r", "requirements/test.txt"), why=found.setup[0].why
        ),
    )
    assert found.inputs == ("requirements/base.txt", "requirements/test.txt")


def test_a_missing_include_is_a_named_problem() -> None:
    project = detect({"requirements.txt": "-r reqs/gone.txt\n"})
    assert project.problems == (
        "requirements.txt includes reqs/gone.txt, which is not a file of the tree",
    )


def test_a_symlinked_requirements_file_is_read_through_the_link() -> None:
    """pip joins an include to the folder of the path it opened (the link's), not the
    target's: `-r other.txt` in the linked file is the root's other.txt."""
    files = {"reqs/real.txt": "-r reqs/other.txt\n", "reqs/other.txt": "six\n"}
    found = python(files, links={"requirements.txt": "reqs/real.txt"})
    assert found.setup[0].argv == (*PIP, "-r", "requirements.txt")
    assert found.inputs == ("reqs/other.txt", "requirements.txt")
    files["reqs/real.txt"] = "-r other.txt\n"
    project = detect(files, links={"requirements.txt": "reqs/real.txt"})
    assert project.problems == (
        "requirements.txt includes other.txt, which is not a file of the tree",
    )


def test_a_link_out_of_the_tree_is_never_read() -> None:
    links = {"requirements.txt": "../../etc/passwd", "a": "/etc", "loop": "loop"}
    source = Files({"x.py": ""}, links)
    assert source.read("requirements.txt") is None
    assert source.read("a/passwd") is None
    assert source.read("loop") is None
    assert resolve_inside("d/../x.py", {}, {"x.py"}) == "x.py"
    assert resolve_inside("../x.py", {}, {"x.py"}) is None


SETUP_PY = """\
from setuptools import setup
TESTS = {"test": ["pytest", "iniconfig"], "docs": ["sphinx"]}
setup(name="sample", python_requires=">=3.10", extras_require=TESTS)
"""


def test_setup_py_with_test_extras() -> None:
    found = python({"setup.py": SETUP_PY, "tests/test_a.py": ""})
    assert found.layout == "setuptools"
    assert found.setup[0].argv == (*PIP, "-e", ".[test]")
    assert len(found.setup) == 1  # pytest comes with the extra
    assert (found.python, found.python_source) == (">=3.10", "setup.py python_requires")
    assert found.inputs == ("setup.py",)


def test_setup_cfg_extras_and_a_tool_only_setup_cfg() -> None:
    cfg = "[metadata]\nname = s\n[options.extras_require]\ntesting =\n    pytest\n"
    found = python({"setup.cfg": cfg, "tests/test_a.py": ""})
    assert found.setup[0].argv == (*PIP, "-e", ".[testing]")
    tool_only = python({"setup.cfg": "[flake8]\nmax-line-length = 100\n", "a.py": ""})
    assert tool_only.setup == ()


def test_pipfile_lock_installs_default_and_develop_pins_with_hashes() -> None:
    lock = """{"_meta": {"sources": [{"url": "https://pypi.org/simple"}]},
      "default": {"six": {"version": "==1.16.0", "hashes": ["sha256:aa"],
                          "markers": "python_version >= '3'"},
                  "sample": {"editable": true, "path": "."}},
      "develop": {"pytest": {"version": "==8.0.0", "hashes": ["sha256:bb", "sha256:cc"]}}}"""
    found = python({"Pipfile.lock": lock, "Pipfile": "", "tests/test_a.py": ""})
    assert found.layout == "pipfile"
    hashed, editable = found.setup
    assert hashed.argv[:2] == (SH, "-c") and "--require-hashes" in hashed.argv[2]
    assert "--index-url https://pypi.org/simple" in hashed.argv[2]
    assert hashed.argv[4:] == (
        "six==1.16.0; python_version >= '3' --hash=sha256:aa",
        "pytest==8.0.0 --hash=sha256:bb --hash=sha256:cc",
    )
    assert editable.argv == (*PIP, "-e", ".")
    assert found.inputs == ("Pipfile.lock",)


def test_poetry_lock_installs_every_group_with_poetry() -> None:
    found = python(
        {"pyproject.toml": "[tool.poetry]\nname='s'\n", "poetry.lock": 'name = "pytest"\n'}
    )
    assert found.layout == "poetry"
    (step,) = found.setup
    assert step.argv[:2] == (SH, "-c")
    assert "export --no-ansi --all-groups --all-extras" in step.argv[2]
    assert "poetry lock" not in step.argv[2]
    assert step.argv[-2:] == ("poetry==2.2.1", "poetry-plugin-export==1.10.1")
    assert found.inputs == ("poetry.lock", "pyproject.toml")


TOX = """\
[tox]
envlist = py312
[testenv]
deps =
    -r{toxinidir}/requirements-test.txt
    pytest-cov
    py38: mock
extras = cli
"""
NOX = """\
import nox

@nox.session(python=["3.12"])
def tests(session):
    session.install("-r", "requirements-nox.txt")
    session.install(".[test]", "iniconfig", EXTRA)

@nox.session
def docs(session):
    session.install("sphinx")
"""


def test_tox_deps_are_installed_with_the_project() -> None:
    found = python(
        {
            "setup.py": "from setuptools import setup\nsetup()\n",
            "tox.ini": TOX,
            "ci/requirements-test.txt": "",
            "requirements-test.txt": "six\n",
        }  # fmt: skip
    )
    (step,) = found.setup
    assert step.argv == (*PIP, "-e", ".[cli]", "pytest-cov", "-r", "requirements-test.txt")
    assert "py38: mock" in step.why  # a factor-conditional line, named as not read
    assert found.inputs == ("requirements-test.txt", "setup.py", "tox.ini")


def test_noxfile_test_sessions_are_read_statically() -> None:
    found = python({"noxfile.py": NOX, "pyproject.toml": "[project]\nname='s'\nversion='1'\n",
                    "requirements-nox.txt": "six\n", "tests/test_a.py": ""})  # fmt: skip
    argv = found.setup[0].argv
    assert argv[:7] == (*PIP, "-e", ".[test]")
    assert "iniconfig" in argv and "sphinx" not in argv
    assert argv[-2:] == ("-r", "requirements-nox.txt")
    assert "not read: EXTRA" in found.setup[0].why
    assert found.setup[-1].argv == (*PIP, "pytest")
    assert "noxfile.py" in found.inputs and "requirements-nox.txt" in found.inputs


@pytest.mark.parametrize(
    ("files", "wanted", "source", "target"),
    [
        ({".python-version": "3.12\n", "pyproject.toml": "[project]\nrequires-python='>=3.9'\n"},
         "3.12", ".python-version", "py312"),
        ({"pyproject.toml": "[project]\nrequires-python='>=3.8.1,<4'\n"},
         ">=3.8.1,<4", "pyproject.toml requires-python", "py38"),
        ({".python-version": "# pinned\ncpython-3.13.1\n"}, "3.13.1", ".python-version", "py313"),
        ({".codefactory/config.toml": 'python = "3.11"\n', ".python-version": "3.12\n"},
         "3.11", ".codefactory/config.toml python", "py311"),
        ({"x.py": ""}, None, "", None),
    ],
)  # fmt: skip
def test_the_python_the_project_asks_for(
    files: dict[str, str | bytes], wanted: str | None, source: str, target: str | None
) -> None:
    found = python(files)
    assert (found.python, found.python_source, found.target_version) == (wanted, source, target)
    if ".python-version" in files:
        assert ".python-version" in found.inputs


def test_target_versions() -> None:
    assert target_version("==3.12.*") == "py312"
    assert target_version(">=3.6") == "py37"
    assert target_version("<3") is None
    assert target_version("nonsense") is None


def test_a_repository_without_python_has_no_python_side() -> None:
    assert detect({"package.json": '{"name": "x"}', "package-lock.json": "{}"}).python is None


def test_a_bad_pyproject_is_a_named_problem() -> None:
    project = detect({"pyproject.toml": "[project\n"})
    assert project.problems and project.problems[0].startswith("pyproject.toml is not valid TOML")


@pytest.mark.parametrize(
    "source",
    [
        "x = " + "-" * 200_000 + "1\n",  # the parser runs out of memory
        "from setuptools import setup\nsetup(python_requires=" + "a." * 100_000 + "b)\n",
        "from setuptools import setup\nsetup(name='a', extras_require={'t': "
        + "-" * 950
        + "1})\n",  # parses, but literal_eval recurses too deep
    ],
)
def test_a_setup_py_or_noxfile_too_deep_to_parse_is_never_an_exception(source: str) -> None:
    assert detect({"setup.py": source}).python is not None
    nox = (
        "import nox\n@nox.session\ndef tests(session):\n"
        "    session.install(" + "-" * 900 + "1)\n"  # parses, but unparse recurses too deep
    )
    for text in (source, nox):
        env = nox_env(Files({"noxfile.py": text}))
        assert env is None or env.skipped, env


def test_a_noxfile_too_deep_to_read_is_named_as_not_read() -> None:
    text = "x = " + "-" * 200_000 + "1\n"
    env = nox_env(Files({"noxfile.py": text}))
    assert env is not None and env.skipped == ["noxfile.py is nested too deeply (MemoryError)"]


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"pyproject.toml": "x = " + "[" * 5000 + "]" * 5000},
         "pyproject.toml is nested too deeply"),
        ({"Pipfile": "", "Pipfile.lock": "[" * 100_000 + "]" * 100_000},
         "Pipfile.lock is nested too deeply"),
        ({".codefactory/config.toml": "python = " + "[" * 5000 + "]" * 5000, "a.py": ""},
         ".codefactory/config.toml: is nested too deeply"),
    ],
)  # fmt: skip
def test_deep_nesting_is_a_named_problem_never_an_exception(
    files: dict[str, str | bytes], problem: str
) -> None:
    project = detect(files)
    assert any(p.startswith(problem) for p in project.problems), project.problems


def test_config_setup_lines_run_after_or_instead_of_the_detected_steps() -> None:
    files = {
        "requirements.txt": "six\n",
        ".codefactory/config.toml": '[setup]\ncommands = ["make deps"]\n',
    }
    after = detect(files)
    plan = setup_plan(after)
    assert [s.argv for s in plan] == [(*PIP, "-r", "requirements.txt"), ("make deps",)]
    assert plan[-1].shell and ".codefactory/config.toml" in plan[-1].why
    assert after.inputs == (".codefactory/config.toml", "requirements.txt")
    files[".codefactory/config.toml"] = '[setup]\ncommands = ["make deps"]\nreplace = true\n'
    instead = detect(files)
    assert [s.argv for s in setup_plan(instead)] == [("make deps",)]
    assert instead.python is not None and instead.python.layout == "config"
