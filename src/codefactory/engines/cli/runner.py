"""One agent CLI run inside the workspace: its kit, its mounts, its one allowed host.

The kit is a host folder made for the run (the factory CA and the CLI's configuration files,
no secret: the credential travels in the environment), lent read-only with the image. A
small shell prelude copies the configuration into a private HOME on the sandbox's own
`/tmp`, outside the workspace, so nothing the CLI keeps there is ever part of the change.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from codefactory.domain import ExecResult
from codefactory.engines.cli.adapter import HOME_DIR, IMAGE_DIR, KIT_DIR, Launch, ca_variables
from codefactory.engines.cli.image import EngineImage
from codefactory.engines.session import ModelAccess
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase, Workspace

PRELUDE = f"""set -e
/usr/bin/mkdir -p {HOME_DIR}
/usr/bin/cp -R {KIT_DIR}/home/. {HOME_DIR}/
set +e
"""
STREAM_BYTES = 64 << 20
"""The most of a CLI's output kept; more is the `output` limit."""


@dataclass(frozen=True, kw_only=True)
class CliRun:
    """What the sandbox returned: the CLI's stream (stdout) and its log (stderr)."""

    result: ExecResult
    stream: bytes
    log: bytes


def run_cli(
    workspace: Workspace,
    image: EngineImage,
    launch: Launch,
    model: ModelAccess,
    *,
    wall_s: float,
    limits: Limits | None = None,
) -> CliRun:
    """Run `launch` in the ENGINE phase with `model.egress_host` its only reachable host,
    mapped to `model.egress_address` when given. Returns once the CLI and everything it
    started are gone; its limits are the sandbox's, with `wall_s` and a 64 MiB output cap."""
    env = {"HOME": HOME_DIR, **ca_variables(), **launch.env}
    chosen = (limits or Limits()).but(wall_s=wall_s, output_bytes=STREAM_BYTES)
    host = model.egress_host.rpartition(":")[0] or model.egress_host
    resolve = {host: model.egress_address} if model.egress_address else None
    with _kit(model.ca_file, launch.home_files) as kit:
        result = workspace.exec(
            ["/usr/bin/sh", "-c", _script(launch), "sh", *launch.command],
            phase=Phase.ENGINE,
            timeout_s=wall_s,
            env=env,
            limits=chosen,
            allow_hosts=[model.egress_host],
            resolve=resolve,
            mounts={IMAGE_DIR: image.root, KIT_DIR: kit},
        )
    return CliRun(
        result=result,
        stream=result.stdout.encode("utf-8"),
        log=result.stderr.encode("utf-8"),
    )


def _script(launch: Launch) -> str:
    redirect = " >&2" if launch.quiet_stdout else ""
    script = PRELUDE + f'"$@"{redirect}\nstatus=$?\n'
    if launch.artifact:
        artifact = f"{HOME_DIR}/{launch.artifact}"
        script += f'[ -f "{artifact}" ] && /usr/bin/cat "{artifact}"\n'
    return script + "exit $status\n"


@contextmanager
def _kit(ca_file: Path, home_files: Mapping[str, str]) -> Iterator[Path]:
    """A world-readable folder with `ca.pem` and `home/`; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="codefactory-engine-kit-"))
    try:
        home = folder / "home"
        home.mkdir()
        shutil.copyfile(ca_file, folder / "ca.pem")
        for relative, text in home_files.items():
            parts = PurePosixPath(relative).parts
            if PurePosixPath(relative).is_absolute() or ".." in parts or not parts:
                raise ValueError(f"a home file must be a relative path below HOME: {relative!r}")
            target = home.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
