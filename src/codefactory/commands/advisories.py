"""Advisory database commands: `advisories import`, `advisories show` (issue 6)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from codefactory.commands.common import JsonOption, build, console, fail, print_json, state

advisories_app = typer.Typer(help="The offline OSV advisory database.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(advisories_app, name="advisories")


@advisories_app.command("import")
def advisories_import(
    path: Annotated[Path, typer.Argument(help="A folder of OSV YAML/JSON files or an OSV zip.")],
    as_json: JsonOption = False,
) -> None:
    """Load OSV advisories (PyPI) into the local database under the data folder, replacing the
    previous import; SCA and the dependency recipe use it from then on. A malformed record
    refuses the whole import, naming the record."""
    from codefactory.advisories import AdvisoryError, import_advisories

    folder = state.settings.data_dir / "advisories"
    try:
        report = import_advisories(path, folder)
    except AdvisoryError as err:
        fail(str(err))
    factory = build()  # loads the new index: an unreadable one fails here, not in a run
    with factory.store.atomic() as tx:
        tx.audit("advisories-imported", actor="cli", **asdict(report))
    if as_json:
        print_json(asdict(report))
        return
    console.print(
        f"imported {report.pypi_records} PyPI advisories ({report.records} records read, "
        f"{report.withdrawn} withdrawn) from {report.source}",
        highlight=False,
    )
    console.print(f"  index: {report.index}\n  sha256: {report.digest}", highlight=False)
    if state.settings.advisories_dir is not None:
        console.print(
            f"  note: CODEFACTORY_ADVISORIES_DIR ({state.settings.advisories_dir}) takes "
            "precedence over the import",
            highlight=False,
        )


@advisories_app.command("show")
def advisories_show(as_json: JsonOption = False) -> None:
    """Which advisory database the factory uses, and the last import's manifest."""
    from codefactory.advisories.importer import MANIFEST_NAME

    manifest_path = state.settings.data_dir / "advisories" / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    source = state.settings.advisories_dir or (manifest or {}).get("index") or "shipped"
    if as_json:
        print_json({"source": str(source), "manifest": manifest})
        return
    console.print(f"advisories: {source}", highlight=False)
    if manifest:
        console.print(
            f"  imported {manifest['imported_at']} from {manifest['source']}: "
            f"{manifest['pypi_records']} PyPI advisories",
            highlight=False,
        )
