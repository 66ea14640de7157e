"""Which Python a request admits, which interpreter answers it, and the binds that lend
interpreters and JavaScript packages to the sandbox: no sandbox, no download."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from codefactory.sandbox.backends import build_sandbox, python_interpreters
from codefactory.sandbox.bubblewrap import BubblewrapSandbox
from codefactory.sandbox.bwrap_args import (
    WORKSPACE_NODE_MODULES,
    CommandSpec,
    node_modules_options,
)
from codefactory.sandbox.errors import SetupFailed, StartFailed
from codefactory.sandbox.layout import SCANNERS_ENV, UV
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase
from codefactory.sandbox.python_request import best_admitted, parse_request
from codefactory.sandbox.pythons import (
    SANDBOX_PYTHONS,
    Interpreter,
    PythonInterpreters,
    PythonUnavailable,
    scanner_steps,
)
from codefactory.sandbox.settings import SandboxSettings

HOST_PYTHON = "/usr/bin/python3"


@pytest.mark.parametrize(
    ("text", "admitted", "refused", "uv_request"),
    [
        ("3.12", ["3.12.0", "3.12.9"], ["3.13.0", "3.11.9", "3.1.2"], "3.12"),
        ("3.1", ["3.1.2"], ["3.12.1", "3.10.0"], "3.1"),
        (" 3.12.1\n", ["3.12.1"], ["3.12.2", "3.12.0"], "3.12.1"),
        ("cpython@3.12", ["3.12.4"], ["3.13.0"], "3.12"),
        ("cpython-3.11", ["3.11.2"], ["3.12.0"], "3.11"),
        ("3", ["3.8.0", "3.13.1"], [], "3"),
        (">=3.12", ["3.12.0", "3.13.1"], ["3.11.9"], ">=3.12"),
        (">=3.10, <3.13", ["3.10.0", "3.12.9"], ["3.13.0", "3.9.18"], "<3.13,>=3.10"),
        ("~=3.10", ["3.10.1", "3.13.0"], ["3.9.0"], "~=3.10"),
        ("==3.12.*", ["3.12.1"], ["3.13.0"], "==3.12.*"),
        ("!=3.12.0,>=3.12", ["3.12.1"], ["3.12.0"], "!=3.12.0,>=3.12"),
    ],
)
def test_a_request_admits_the_releases_it_names(
    text: str, admitted: list[str], refused: list[str], uv_request: str
) -> None:
    request = parse_request(text)
    assert request.uv_request == uv_request
    assert [v for v in admitted + refused if request.admits(v)] == admitted


def test_a_request_never_admits_a_prerelease_or_a_non_version() -> None:
    request = parse_request(">=3.12")
    assert not request.admits("3.13.0rc1")
    assert not request.admits("not-a-version")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("pypy@3.10", "only CPython"),
        ("graalpy", "only CPython"),
        ("3.13t", "free-threaded"),
        ("2.7", "Python 2"),
        ("3.12 3.13", "not a CPython 3 version"),
        (">=", "not a PEP 440 version specifier"),
        (">=3.12;", "not a PEP 440 version specifier"),
        (",", "no version specifier"),
    ],
)
def test_a_request_that_is_not_a_cpython_version_is_refused_with_the_reason(
    text: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_request(text)


def test_the_highest_admitted_version_is_chosen() -> None:
    versions = ["3.12.10", "3.12.9", "3.13.0", "3.11.7"]
    assert best_admitted(parse_request("3.12"), versions) == "3.12.10"
    assert best_admitted(parse_request(">=3.11"), versions) == "3.13.0"
    assert best_admitted(parse_request("3.10"), versions) is None


def _fake_install(root: Path, name: str, *, minor: str, executable: bool = True) -> None:
    """A uv-managed install's shape; never run here."""
    binary = root / name / "bin" / f"python{minor}"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/false\n")
    binary.chmod(0o755 if executable else 0o644)


def _interpreters(root: Path, **sources: str) -> PythonInterpreters:
    return PythonInterpreters(
        root,
        host_python=HOST_PYTHON,
        downloads_json_url=sources.get("json"),
        mirror=sources.get("mirror"),
    )


def test_installed_interpreters_are_read_from_their_folders(tmp_path: Path) -> None:
    _fake_install(tmp_path, "cpython-3.12.1-linux-x86_64-gnu", minor="3.12")
    _fake_install(tmp_path, "cpython-3.10.13-linux-x86_64-gnu", minor="3.10")
    _fake_install(tmp_path, "cpython-3.13.0+freethreaded-linux-x86_64-gnu", minor="3.13t")
    _fake_install(tmp_path, "cpython-3.13.1-linux-aarch64-gnu", minor="3.13")
    _fake_install(tmp_path, "cpython-3.11.7-linux-x86_64-gnu", minor="3.11", executable=False)
    (tmp_path / "cpython-3.12-linux-x86_64-gnu").symlink_to(
        tmp_path / "cpython-3.12.1-linux-x86_64-gnu"
    )  # uv's minor-version link: a host path, meaningless in the sandbox
    (tmp_path / ".lock").touch()
    assert _interpreters(tmp_path).installed() == [
        Interpreter(
            version="3.10.13",
            sandbox_path=f"{SANDBOX_PYTHONS}/cpython-3.10.13-linux-x86_64-gnu/bin/python3.10",
        ),
        Interpreter(
            version="3.12.1",
            sandbox_path=f"{SANDBOX_PYTHONS}/cpython-3.12.1-linux-x86_64-gnu/bin/python3.12",
        ),
    ]
    assert _interpreters(tmp_path / "absent").installed() == []


def test_the_host_python_answers_what_it_satisfies(tmp_path: Path) -> None:
    interpreters = _interpreters(tmp_path)
    host = interpreters.host()
    assert host.sandbox_path == HOST_PYTHON and host.version.startswith("3.")
    assert interpreters.resolve(None, source="") == host
    assert interpreters.resolve("  ", source=".python-version") == host
    assert interpreters.resolve(f">={host.minor}", source="pyproject.toml") == host
    assert interpreters.resolve(host.minor, source=".python-version") == host
    assert not tmp_path.joinpath("pythons").exists()  # nothing installed, nothing created


def test_an_installed_python_answers_without_any_download_source(tmp_path: Path) -> None:
    _fake_install(tmp_path, "cpython-3.12.1-linux-x86_64-gnu", minor="3.12")
    _fake_install(tmp_path, "cpython-3.12.3-linux-x86_64-gnu", minor="3.12")
    found = _interpreters(tmp_path).resolve(">=3.12", source="pyproject.toml requires-python")
    assert found.version == "3.12.3"
    assert found.minor == "3.12"


def test_a_missing_python_with_nothing_configured_names_the_source_and_the_setting(
    tmp_path: Path,
) -> None:
    _fake_install(tmp_path, "cpython-3.10.13-linux-x86_64-gnu", minor="3.10")
    with pytest.raises(PythonUnavailable) as raised:
        _interpreters(tmp_path).resolve("3.13", source=".python-version")
    error = raised.value
    assert isinstance(error, SetupFailed)
    assert (error.wanted, error.source) == ("3.13", ".python-version")
    message = str(error)
    assert message.startswith("Python '3.13' (asked by .python-version) is not available")
    assert f"{tmp_path} (3.10.13) do not satisfy it" in message
    assert "no Python download source is configured" in message
    assert "CODEFACTORY_SANDBOX__PYTHON_DOWNLOADS_JSON_URL" in message
    assert "CODEFACTORY_SANDBOX__PYTHON_INSTALL_MIRROR" in message


def test_an_unreadable_request_fails_the_setup_naming_its_file(tmp_path: Path) -> None:
    with pytest.raises(PythonUnavailable, match=r"asked by \.python-version.*only CPython"):
        _interpreters(tmp_path, mirror="https://mirror.invalid").resolve(
            "pypy@3.10", source=".python-version"
        )


def test_scanner_steps_install_the_factory_s_bandit_with_the_project_s_python() -> None:
    python = Interpreter(version="3.12.1", sandbox_path=f"{SANDBOX_PYTHONS}/cpython/bin/python3")
    venv, install = scanner_steps(python)
    assert venv.argv[:2] == (UV, "venv") and venv.argv[-3:] == (
        "--python",
        python.sandbox_path,
        SCANNERS_ENV,
    )
    bandit = importlib.metadata.version("bandit")
    assert install.argv[-1] == f"bandit=={bandit}"
    assert f"{SCANNERS_ENV}/bin/python" in install.argv
    for step in (venv, install):  # never the repository's uv configuration
        assert "--no-config" in step.argv and not step.shell and "3.12" in step.why


def test_settings_place_the_interpreters(tmp_path: Path) -> None:
    default = python_interpreters(SandboxSettings(), tmp_path)
    assert default.root == tmp_path / "pythons"
    assert (default.downloads_json_url, default.mirror) == (None, None)
    configured = python_interpreters(
        SandboxSettings(
            pythons_dir=tmp_path / "elsewhere",
            python_downloads_json_url="https://mirror.bank/python/downloads.json",
            python_install_mirror="https://mirror.bank/pbs",
        ),
        tmp_path,
    )
    assert configured.root == tmp_path / "elsewhere"
    assert configured.downloads_json_url == "https://mirror.bank/python/downloads.json"
    assert configured.mirror == "https://mirror.bank/pbs"
    assert configured.host_python == HOST_PYTHON


def _spec(tmp_path: Path, phase: Phase) -> CommandSpec:
    return CommandSpec(
        bwrap="bwrap",
        phase=phase,
        workspace_dir=tmp_path / "workspace",
        env_dir=tmp_path / "env",
        python=Path(HOST_PYTHON),
        cache_dir=tmp_path / "cache",
        tmp_bytes=1,
        limits=Limits(),
        address_space_rlimit=False,
        sandbox_env={},
    )


def test_installed_packages_are_bound_read_only_outside_setup(tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    (tmp_path / "env").mkdir()
    for phase in Phase:
        assert node_modules_options(_spec(tmp_path, phase)) == []  # nothing installed
    (tmp_path / "env" / "node_modules").mkdir()
    expected = ["--ro-bind", str(tmp_path / "env" / "node_modules"), WORKSPACE_NODE_MODULES]
    assert node_modules_options(_spec(tmp_path, Phase.ENGINE)) == expected
    (tmp_path / "workspace" / "node_modules").mkdir()  # the mount point of an earlier command
    assert node_modules_options(_spec(tmp_path, Phase.CHECK)) == expected
    assert node_modules_options(_spec(tmp_path, Phase.SETUP)) == []  # setup writes /env itself


def test_a_link_or_file_where_packages_are_shown_is_refused(tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    (tmp_path / "env" / "node_modules").mkdir(parents=True)
    target = tmp_path / "workspace" / "node_modules"
    target.symlink_to("/usr")
    with pytest.raises(StartFailed, match="`node_modules` is a link"):
        node_modules_options(_spec(tmp_path, Phase.CHECK))
    target.unlink()
    target.write_text("not a folder")
    with pytest.raises(StartFailed, match="`node_modules` is a file"):
        node_modules_options(_spec(tmp_path, Phase.ENGINE))


def test_installed_packages_behind_a_link_are_never_bound(tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "node_modules").symlink_to("/root")  # setup made it: never followed
    assert node_modules_options(_spec(tmp_path, Phase.CHECK)) == []


def test_the_built_sandbox_and_its_images_share_the_configured_interpreters(
    tmp_path: Path,
) -> None:
    settings = SandboxSettings(
        pythons_dir=tmp_path / "pythons", python_install_mirror="https://mirror.bank/pbs"
    )
    sandbox = build_sandbox(settings, data_dir=tmp_path / "data")
    assert isinstance(sandbox, BubblewrapSandbox) and sandbox.images is not None
    assert sandbox.interpreters.root == tmp_path / "pythons"
    assert sandbox.interpreters.mirror == "https://mirror.bank/pbs"
    assert sandbox.images.interpreters is sandbox.interpreters
