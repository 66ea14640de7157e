"""Witness commands: `witness serve` (a C2SP tlog-witness) and `witness key`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codefactory.commands.common import console, errors, fail

if TYPE_CHECKING:
    from codefactory.witness.keys import WitnessKey

witness_app = typer.Typer(
    help="A C2SP tlog-witness that cosigns audit checkpoints; run it under another team.",
    no_args_is_help=True,
)

DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="The witness's own folder (key and store).")
]


TokenOption = Annotated[
    str | None,
    typer.Option(
        "--pkcs11-token",
        help="Keep the key in this PKCS#11 token (an HSM) instead of a key file.",
        show_default=False,
    ),
]
LibraryOption = Annotated[
    Path, typer.Option("--pkcs11-library", help="The token's PKCS#11 module.")
]
PinFileOption = Annotated[
    Path | None,
    typer.Option(
        "--pkcs11-pin-file", help="File holding the token's user PIN.", show_default=False
    ),
]
LabelOption = Annotated[str, typer.Option("--pkcs11-key-label", help="The key's label.")]
DEFAULT_LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")


def _key(
    data_dir: Path,
    name: str | None,
    token: str | None,
    library: Path,
    pin_file: Path | None,
    label: str,
) -> WitnessKey:
    from codefactory.identity.settings import Pkcs11Settings
    from codefactory.witness.keys import load_key, token_key

    if token is None:
        return load_key(data_dir, name)
    settings = Pkcs11Settings(library=library, token_label=token, pin_file=pin_file)
    return token_key(data_dir, name, settings, label)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(witness_app, name="witness")


@witness_app.command("key")
def witness_key(
    data_dir: DataDirOption,
    name: Annotated[
        str | None, typer.Option(help="The key's name (to create it), e.g. witness.bank.example")
    ] = None,
    token: TokenOption = None,
    library: LibraryOption = DEFAULT_LIBRARY,
    pin_file: PinFileOption = None,
    label: LabelOption = "codefactory-witness",
) -> None:
    """Print the witness's verifier key (`name+keyid+base64(0x04||key)`), creating the key
    with `--name` on first use: give it to the factory's `audit.witnesses[].verifier_key`."""
    from codefactory.witness.keys import WitnessSetupError

    try:
        key = _key(data_dir, name, token, library, pin_file, label)
    except WitnessSetupError as err:
        fail(str(err))
    print(key.public.encoded())


@witness_app.command("serve")
def witness_serve(
    data_dir: DataDirOption,
    log: Annotated[
        list[str],
        typer.Option(
            "--log",
            help="ORIGIN=VERIFIER_KEY of a log to witness (its checkpoints' note key); repeat.",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="The key's name (to create it).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 7380,
    prefix: Annotated[str, typer.Option(help="URL prefix before /add-checkpoint.")] = "",
    max_connections: Annotated[
        int,
        typer.Option(
            min=1,
            help="Open connections in all; past it the busiest client's oldest idle one is closed.",
        ),
    ] = 256,
    per_client: Annotated[
        int, typer.Option(min=1, help="Open connections per client address (IPv6: per /64).")
    ] = 16,
    token: TokenOption = None,
    library: LibraryOption = DEFAULT_LIBRARY,
    pin_file: PinFileOption = None,
    label: LabelOption = "codefactory-witness",
) -> None:
    """Serve `POST <prefix>/add-checkpoint` (c2sp.org/tlog-witness): cosign each checkpoint of
    the given logs that is consistent with the last one cosigned, refuse everything else."""
    from codefactory.witness.keys import KEY_FILE_MODE, WitnessSetupError, prepare_folder
    from codefactory.witness.logs import parse_logs
    from codefactory.witness.protocol import Witness
    from codefactory.witness.server import WitnessServer
    from codefactory.witness.store import WitnessStore

    try:
        logs = parse_logs(log)
        key = _key(data_dir, name, token, library, pin_file, label)
        store = WitnessStore(prepare_folder(data_dir))
    except (WitnessSetupError, ValueError) as err:
        fail(str(err))
    server = WitnessServer(
        (host, port),
        Witness(key=key, store=store, logs=logs),
        prefix=prefix,
        max_connections=max_connections,
        per_client=per_client,
    )
    console.print(f"witness {key.public.encoded()}", highlight=False, soft_wrap=True)
    if key.mode == KEY_FILE_MODE:
        errors.print(
            "[bold yellow]WARNING:[/] development mode: the witness key is a file in "
            f"{data_dir}; whoever reads it can cosign anything (use --pkcs11-token)",
            highlight=False,
        )
    console.print(f"listening on {server.url}/add-checkpoint", highlight=False, soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
