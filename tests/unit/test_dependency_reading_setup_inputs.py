"""Every input the setup phase installs from is read for SCA: setup.cfg and setup.py
(setuptools), tox.ini `deps`, noxfile installs and the repository config's setup commands.

Each input has the shape it has in the wild; the reader runs over a real folder
(`FolderDependencyFiles`), no sandbox. The first test is the red team's tree (F6): the setup
plan installs each of these pins, so SCA must judge each of them.
"""

from __future__ import annotations

from pathlib import Path

from codefactory.advisories import FolderDependencyFiles, Pin, read_dependencies
from codefactory.advisories.model import PYPI, Unpinned
from codefactory.advisories.reading import DependencyReading, is_dependency_file
from codefactory.projects import detect_project
from codefactory.projects.detect import setup_plan


class _Folder:
    """A `projects.model.FileSource` over a folder, for the setup plan of the same tree."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def read(self, path: str) -> bytes | None:
        target = self.root / path
        return target.read_bytes() if target.is_file() else None

    def is_link(self, path: str) -> bool:
        return (self.root / path).is_symlink()


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def read(root: Path, files: dict[str, str]) -> DependencyReading:
    return read_dependencies(FolderDependencyFiles(tree(root, files)))


def pins(reading: DependencyReading) -> list[tuple[str, str, str, int]]:
    return sorted((p.file, p.name, p.version, p.line) for p in reading.pins)


def spots(reading: DependencyReading) -> list[tuple[str, int, str]]:
    return [(s.file, s.line, s.reason) for s in reading.unreadable]


def test_every_pin_the_setup_plan_installs_is_read_with_its_file_and_line(
    tmp_path: Path,
) -> None:
    files = {
        "setup.cfg": "[options]\ninstall_requires =\n    requests==2.19.1\n"
        "[options.extras_require]\ntest = urllib3==1.24.1\n",
        "setup.py": "from setuptools import setup\n"
        'setup(name="x", install_requires=["jinja2==2.10"])\n',
        "tox.ini": "[testenv]\ndeps =\n    pyyaml==5.1\n",
        "noxfile.py": "import nox\n@nox.session\ndef tests(session):\n"
        '    session.install("django==2.2.0")\n',
        ".codefactory/config.toml": "[setup]\n"
        'commands = ["uv pip install --python /env/bin/python flask==0.12"]\n',
    }
    root = tree(tmp_path, files)
    plan = " ".join(" ".join(step.argv) for step in setup_plan(detect_project(_Folder(root))))
    for installed in ("pyyaml==5.1", "django==2.2.0", "flask==0.12"):
        assert installed in plan  # what the setup phase installs...
    reading = read_dependencies(FolderDependencyFiles(root))
    assert pins(reading) == [  # ...is what SCA judges, where it is written
        (".codefactory/config.toml", "flask", "0.12", 2),
        ("noxfile.py", "django", "2.2.0", 4),
        ("setup.cfg", "requests", "2.19.1", 3),
        ("setup.cfg", "urllib3", "1.24.1", 5),
        ("setup.py", "jinja2", "2.10", 2),
        ("tox.ini", "pyyaml", "5.1", 3),
    ]
    assert sorted(reading.files) == sorted(files)
    assert (reading.unpinned, reading.unreadable, reading.ecosystems) == ((), (), {PYPI})
    assert all(is_dependency_file(path) for path in files)
    assert is_dependency_file("pkg/sub/setup.cfg") and not is_dependency_file(
        "sub/.codefactory/config.toml"
    )


def test_setup_cfg_as_setuptools_reads_it(tmp_path: Path) -> None:
    reading = read(
        tmp_path,
        {
            "setup.cfg": """\
[metadata]
name = app
install_requires = notread==1.0

[options]
packages = find:
install_requires =
    # the web stack
    idna==3.6
    ; a configparser comment
    requests>=2.31
    colorama==0.4.6; sys_platform == "win32"

    django @ https://example.org/django-4.2.tar.gz
setup_requires = setuptools-scm==8.0.4
[options.extras_require]
test = pytest==7.4.0; mock==5.1.0
docs =
    sphinx==7.2.6
not valid = -r other.txt
""",
            "lib/setup.cfg": "[options]\ninstall-requires = file: reqs/base.in, reqs/extra.in\n",
            "lib/reqs/base.in": "six==1.16.0\n",
            "lib/reqs/extra.in": "attrs==23.1.0\n",
        },
    )
    assert pins(reading) == [
        ("lib/reqs/base.in", "six", "1.16.0", 1),
        ("lib/reqs/extra.in", "attrs", "23.1.0", 1),
        ("setup.cfg", "colorama", "0.4.6", 12),
        ("setup.cfg", "idna", "3.6", 9),
        ("setup.cfg", "mock", "5.1.0", 17),  # a one-line value is split at `;`
        ("setup.cfg", "pytest", "7.4.0", 17),
        ("setup.cfg", "setuptools-scm", "8.0.4", 15),  # pip installs it to build the project
        ("setup.cfg", "sphinx", "7.2.6", 19),
    ]
    colorama = next(p for p in reading.pins if p.name == "colorama")
    assert colorama.marker == 'sys_platform == "win32"'
    assert sorted((u.line, u.kind) for u in reading.unpinned) == [(11, "range"), (14, "url")]
    assert spots(reading) == [
        (
            "setup.cfg",
            20,
            "'-r other.txt' is not a PEP 508 requirement (setuptools reads no pip option)",
        )
    ]
    assert sorted(reading.files) == [
        "lib/reqs/base.in",
        "lib/reqs/extra.in",
        "lib/setup.cfg",
        "setup.cfg",
    ]


def test_setup_py_is_read_with_ast_and_what_is_not_literal_is_named(tmp_path: Path) -> None:
    reading = read(
        tmp_path,
        {
            "setup.py": """\
import setuptools

TESTS = ["pytest==7.4.0", "idna==3.6"]
DYNAMIC = ["six==1.16.0"]
DYNAMIC.append("attrs==23.1.0")

setuptools.setup(
    name="app",
    install_requires=(
        "requests==2.19.1",
        f"urllib3=={'1.24.1'}",
        "click>=8",
    ),
    setup_requires=["wheel==0.38.0"],
    extras_require={
        "test": TESTS,
        "more": DYNAMIC,
        "docs": [line for line in open("docs.txt")],
        **EXTRA,
    },
)
""",
            "other/setup.py": "from setuptools import setup\n"
            "setup(install_requires=requirements())\n",
            "broken/setup.py": "from setuptools import setup\nsetup(install_requires=[\n",
            "kw/setup.py": "from setuptools import setup\n"
            'kw = {"install_requires": ["x==1"]}\nsetup(**kw)\n',
        },
    )
    assert pins(reading) == [
        ("setup.py", "idna", "3.6", 3),  # a name bound once to a literal, never changed
        ("setup.py", "pytest", "7.4.0", 3),
        ("setup.py", "requests", "2.19.1", 10),
        ("setup.py", "wheel", "0.38.0", 14),
    ]
    assert [(u.file, u.line, u.requirement) for u in reading.unpinned] == [
        ("setup.py", 12, "click>=8")
    ]
    found = spots(reading)
    assert found[0][:2] == ("broken/setup.py", 2) and "setup.py does not parse" in found[0][2]
    unrun = ": SCA reads setup.py without running it"
    not_list = " is not a literal list of strings" + unrun
    assert found[1:] == [
        ("kw/setup.py", 3, "setup(**kw) passes arguments SCA cannot read without running setup.py"),
        ("other/setup.py", 2, "install_requires: `requirements()`" + not_list),
        ("setup.py", 11, "install_requires: `f\"urllib3=={'1.24.1'}\"` is not a literal string"
                         + unrun),
        ("setup.py", 17, "extras_require['more']: `DYNAMIC`" + not_list),
        ("setup.py", 18, "extras_require['docs']: `[line for line in open('docs.txt')]` is not a "
                         "literal list of strings" + unrun),
        ("setup.py", 19, "extras_require: `EXTRA` is unpacked into the dict (`**`)" + unrun),
    ]  # fmt: skip


def test_tox_deps_of_every_testenv_with_includes_followed_once(tmp_path: Path) -> None:
    reading = read(
        tmp_path,
        {
            "tox.ini": """\
[tox]
envlist = py311, py312, lint

[base]
deps =
    idna==3.6

[testenv]
deps =
    -r{toxinidir}/requirements.txt
    -c {toxinidir}/ci/constraints.pin
    py311: mock==5.1.0
    {[base]deps}
    -e .
    pytest>=7  # any
commands = pytest

[testenv:lint]
deps =
    {[testenv]deps}
    ruff==0.1.0
    {env:EXTRA_DEPS}
""",
            "requirements.txt": "six==1.16.0\n",
            "ci/constraints.pin": "attrs==23.1.0\n",
        },
    )
    assert pins(reading) == [
        ("ci/constraints.pin", "attrs", "23.1.0", 1),  # read only because tox.ini names it
        ("requirements.txt", "six", "1.16.0", 1),
        ("tox.ini", "idna", "3.6", 6),  # through the {[base]deps} reference
        ("tox.ini", "mock", "5.1.0", 12),  # a factor-conditional line installs in py311
        ("tox.ini", "ruff", "0.1.0", 21),
    ]
    assert reading.files.count("requirements.txt") == 1
    assert sorted((u.line, u.kind) for u in reading.unpinned) == [(14, "editable"), (15, "range")]
    assert spots(reading) == [
        (
            "tox.ini",
            22,
            "deps line '{env:EXTRA_DEPS}' holds a tox substitution SCA cannot resolve statically",
        )
    ]


def test_noxfile_installs_literal_arguments_and_names_what_it_cannot_read(tmp_path: Path) -> None:
    reading = read(
        tmp_path,
        {
            "noxfile.py": """\
import nox

LINTERS = ["ruff==0.1.0"]


def _common(session):
    session.install("--upgrade", "--index-url", "https://example.org/simple", "idna==3.6")


@nox.session(python=["3.11", "3.12"])
def tests(session):
    _common(session)
    session.install("-r", "ci/test.pin", "-e", ".", silent=True)
    session.install(*LINTERS)
    session.install(f"django=={VERSION}")
    session.run("python", "-m", "pip", "install", "mock==5.1.0")
    session.run("pytest")
""",
            "ci/test.pin": "six==1.16.0\n",
            "broken/noxfile.py": "def x(:\n",
        },
    )
    assert pins(reading) == [
        ("ci/test.pin", "six", "1.16.0", 1),
        ("noxfile.py", "idna", "3.6", 7),
        ("noxfile.py", "mock", "5.1.0", 16),
    ]
    assert [(u.line, u.requirement, u.kind) for u in reading.unpinned] == [(13, ".", "editable")]
    found = spots(reading)
    assert found[0][:2] == ("broken/noxfile.py", 1) and "does not parse" in found[0][2]
    unrun = " is not a literal string: SCA reads the noxfile without running it"
    assert found[1:] == [
        ("noxfile.py", 14, "session.install argument `*LINTERS`" + unrun),
        ("noxfile.py", 15, "session.install argument `f'django=={VERSION}'`" + unrun),
    ]


def test_setup_commands_a_plain_pip_install_is_judged_any_other_line_is_counted(
    tmp_path: Path,
) -> None:
    config = """\
[setup]
commands = [
    "python -m pip install idna==3.6 'requests[socks]==2.19.1'",
    "pip install $(cat extra.txt)",
    "make assets",
]
"""
    reading = read(tmp_path / "a", {".codefactory/config.toml": config})
    assert pins(reading) == [
        (".codefactory/config.toml", "idna", "3.6", 3),
        (".codefactory/config.toml", "requests", "2.19.1", 3),
    ]
    assert reading.unpinned == (
        Unpinned(
            file=".codefactory/config.toml",
            line=4,
            requirement="setup command 'pip install $(cat extra.txt)' installs what SCA cannot see",
            kind="setup-command",
        ),
        Unpinned(
            file=".codefactory/config.toml",
            line=5,
            requirement="setup command 'make assets' installs what SCA cannot see",
            kind="setup-command",
        ),
    )
    assert reading.unreadable == ()

    only_shell = read(
        tmp_path / "b", {".codefactory/config.toml": '[setup]\ncommands = ["make"]\n'}
    )
    assert only_shell.ecosystems == frozenset()  # no PyPI data is asked of a JavaScript repository
    assert [u.kind for u in only_shell.unpinned] == ["setup-command"]
    nested = read(
        tmp_path / "c",
        {"sub/.codefactory/config.toml": '[setup]\ncommands = ["pip install idna==3.6"]\n'},
    )
    assert nested.pins == ()  # the setup phase reads the root config only
    invalid = read(
        tmp_path / "d",
        {".codefactory/config.toml": '[setup]\ncommands = "pip install idna==3.6"\n'},
    )
    assert (invalid.pins, invalid.unpinned) == ((), ())  # the setup phase does not run it either


def test_a_pin_of_a_setup_input_is_a_pin_like_any_other(tmp_path: Path) -> None:
    reading = read(tmp_path, {"setup.cfg": "[options]\ninstall_requires = idna==3.6\n"})
    assert reading.pins == (Pin(file="setup.cfg", name="idna", version="3.6", line=2),)
    assert "setup.cfg" not in reading.pin_files  # the bump recipe rewrites pin files only


def test_hostile_shapes_are_named_never_a_crash(tmp_path: Path) -> None:
    deep = "+".join(['["a==1"]'] * 5000)
    (tmp_path / "elsewhere.toml").write_text('[setup]\ncommands = ["pip install idna==3.6"]\n')
    (tmp_path / ".codefactory").mkdir()
    (tmp_path / ".codefactory" / "config.toml").symlink_to("../elsewhere.toml")
    reading = read(
        tmp_path,
        {
            "setup.py": f"from setuptools import setup\nsetup(install_requires={deep})\n",
            "tox.ini": "[testenv]\ndeps =\n    -r\n",
        },
    )
    assert reading.pins == ()  # a linked repository config is refused by detection, never run
    [(file, line, reason), tox] = spots(reading)
    assert file == "setup.py" and reason.startswith("setup.py does not parse: maximum recursion")
    assert tox == ("tox.ini", 3, "option -r needs a value")
