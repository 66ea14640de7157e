"""Advisory database commands: `advisories sync`, `import` and `show` (issues 6 and 10)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from codefactory.commands.common import JsonOption, build, console, fail, print_json, state

if TYPE_CHECKING:
    from codefactory.advisories import AdvisoryDatabase

advisories_app = typer.Typer(help="The offline OSV advisory database.", no_args_is_help=True)

FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Base URL of the OSV archives (<URL>/<ecosystem>/all.zip); "
        "default: settings advisories.sync_url.",
    ),
]
EcosystemOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ecosystem",
        help="An ecosystem to sync (PyPI, npm); repeat for several. "
        "Default: settings advisories.ecosystems.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(advisories_app, name="advisories")


def _folder() -> Path:
    return state.settings.data_dir / "advisories"


@advisories_app.command("sync")
def advisories_sync(
    source: FromOption = None,
    ecosystem: EcosystemOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download OSV's per-ecosystem archives (PyPI and npm by default) from OSV's public
    bucket or a mirror, verify every record, and replace those ecosystems' data atomically.
    A failed sync changes nothing and exits 1, saying what the data still is."""
    from codefactory.advisories import AdvisoryError
    from codefactory.advisories.sync import sync_advisories
    from codefactory.audit.events import AdvisoriesSynced

    settings = state.settings.advisories
    try:
        report = sync_advisories(_folder(), settings, base_url=source, ecosystems=ecosystem or ())
    except (AdvisoryError, ValueError) as err:
        _audit_failure(source or settings.sync_url, str(err))
        fail(f"{err}; {_previous_data()}")
    factory = build()  # loads the new index: an unreadable one fails here, not in a run
    with factory.store.atomic() as tx:
        tx.append(AdvisoriesSynced(actor="cli", **asdict(report)))
    if as_json:
        print_json(asdict(report))
        return
    console.print(
        f"synced advisories from {report.source} in {report.took_s:.1f} s", highlight=False
    )
    for name, data in report.ecosystems.items():
        console.print(
            f"  {name:<5} {data.records} records ({data.withdrawn} withdrawn, "
            f"{data.other_ecosystems} of other ecosystems), "
            f"{report.archive_bytes[name]} bytes, archive sha256 {data.sha256[:16]}",
            highlight=False,
        )
    console.print(f"  index: {report.index}\n  sha256: {report.digest}", highlight=False)
    _note_override()


@advisories_app.command("import")
def advisories_import(
    path: Annotated[
        Path,
        typer.Argument(
            help="A folder of OSV YAML/JSON files (such as an advisory-database checkout) "
            "or an OSV zip."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Load OSV advisories (PyPI, npm) into the local database under the data folder,
    replacing the ecosystems the source holds; SCA and the dependency recipe use it from
    then on. Files that are not advisories (README, workflows, scripts) are skipped and
    counted; a malformed record refuses the whole import, naming the record."""
    from codefactory.advisories import AdvisoryError, import_advisories
    from codefactory.audit.events import AdvisoriesImported

    try:
        report = import_advisories(path, _folder())
    except AdvisoryError as err:
        fail(str(err))
    factory = build()  # loads the new index: an unreadable one fails here, not in a run
    with factory.store.atomic() as tx:
        tx.append(AdvisoriesImported(actor="cli", **asdict(report)))
    if as_json:
        print_json(asdict(report))
        return
    console.print(
        f"imported {report.pypi_records} PyPI and {report.npm_records} npm advisories "
        f"({report.records} records read, {report.withdrawn} withdrawn, "
        f"{report.other_ecosystems} of other ecosystems) from {report.source}",
        highlight=False,
    )
    skipped = sum(report.skipped.values())
    if skipped:
        kinds = ", ".join(
            f"{count} {kind}"
            for kind, count in sorted(report.skipped.items(), key=lambda i: (-i[1], i[0]))
        )
        console.print(
            f"  skipped {skipped} files that are not advisories: {kinds}", highlight=False
        )
    console.print(f"  index: {report.index}\n  sha256: {report.digest}", highlight=False)
    _note_override()


@advisories_app.command("show")
def advisories_show(as_json: JsonOption = False) -> None:
    """Which advisory data the factory uses: per ecosystem, how many records, when they were
    synced (and how long ago) and from where."""
    import json

    from codefactory.advisories.manifest import MANIFEST_NAME

    manifest_path = _folder() / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    location, database = _database()
    now = datetime.now(UTC)
    ecosystems = _freshness(database, now)
    if as_json:
        print_json({"source": str(location), "manifest": manifest, "ecosystems": ecosystems})
        return
    console.print(f"advisories: {location} (sha256 {database.digest[:16]})", highlight=False)
    for name, fresh in ecosystems.items():
        console.print(f"  {name:<5} {_describe(fresh)}", highlight=False)


def _database() -> tuple[Path, AdvisoryDatabase]:
    """The advisory data the factory would load, and where it is; exits 1 if unreadable."""
    from codefactory.advisories import AdvisoryError

    try:
        return _database_quiet()
    except AdvisoryError as err:
        fail(str(err))


def _freshness(database: AdvisoryDatabase, now: datetime) -> dict[str, dict[str, Any]]:
    from codefactory.advisories.ecosystems import SCHEMES

    shown: dict[str, dict[str, Any]] = {}
    for name in sorted(SCHEMES):
        fresh = database.freshness(ecosystem=name)
        age = fresh.age(now)
        shown[name] = {
            "records": fresh.records,
            "synced_at": fresh.synced_at.isoformat() if fresh.synced_at else None,
            "age_s": round(age.total_seconds()) if age is not None else None,
            "source": fresh.source,
        }
    return shown


def _describe(fresh: dict[str, Any], *, source: bool = True) -> str:
    """`664 records, synced 2026-11-29T20:00:00+00:00 (3 h ago) from <source>`."""
    where = f" from {fresh['source']}" if source else ""
    if fresh["synced_at"] is None:
        return f"{fresh['records']} records, never synced" + (f" ({where[1:]})" if where else "")
    age = _age(timedelta(seconds=fresh["age_s"]))
    return f"{fresh['records']} records, synced {fresh['synced_at']} ({age}){where}"


def _age(age: timedelta) -> str:
    """`just now`, `12 min ago`, `5 h ago`, `3 d ago`."""
    seconds = age.total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def _previous_data() -> str:
    """What the factory still uses after a failed sync, in one clause."""
    from codefactory.advisories import AdvisoryError

    try:
        location, database = _database_quiet()
    except AdvisoryError as err:
        return f"the previous advisory data is untouched (and unreadable: {err})"
    now = datetime.now(UTC)
    shown = _freshness(database, now).items()
    parts = [f"{name} {_describe(fresh, source=False)}" for name, fresh in shown]
    return f"the previous advisory data is untouched ({'; '.join(parts)}; in {location})"


def _database_quiet() -> tuple[Path, AdvisoryDatabase]:
    """As `_database`, raising AdvisoryError."""
    from codefactory.advisories import AdvisoryDatabase
    from codefactory.advisories.importer import default_advisories
    from codefactory.factory import SHIPPED_ADVISORIES

    settings = state.settings
    location = settings.advisories_dir or default_advisories(settings.data_dir, SHIPPED_ADVISORIES)
    return location, AdvisoryDatabase.load(location)


def _audit_failure(url: str, reason: str) -> None:
    """A refused sync is an audit event too, when the factory can start."""
    from codefactory.advisories import AdvisoryError
    from codefactory.audit.events import AdvisoriesSyncFailed

    try:
        factory = build()
    except (AdvisoryError, OSError):
        return  # the factory itself cannot start: the error printed next says why
    with factory.store.atomic() as tx:
        tx.append(AdvisoriesSyncFailed(actor="cli", source=url, reason=reason))


def _note_override() -> None:
    if state.settings.advisories_dir is not None:
        console.print(
            f"  note: CODEFACTORY_ADVISORIES_DIR ({state.settings.advisories_dir}) takes "
            "precedence over the synced and imported data",
            highlight=False,
        )
