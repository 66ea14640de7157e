"""Witness commands: `witness serve` (a C2SP tlog-witness) and `witness key`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefactory.commands.common import console, fail

witness_app = typer.Typer(
    help="A C2SP tlog-witness that cosigns audit checkpoints; run it under another team.",
    no_args_is_help=True,
)

DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="The witness's own folder (key and store).")
]


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(witness_app, name="witness")


@witness_app.command("key")
def witness_key(
    data_dir: DataDirOption,
    name: Annotated[
        str | None, typer.Option(help="The key's name (to create it), e.g. witness.bank.example")
    ] = None,
) -> None:
    """Print the witness's verifier key (`name+keyid+base64(0x04||key)`), creating the key
    with `--name` on first use: give it to the factory's `audit.witnesses[].verifier_key`."""
    from codefactory.witness.keys import WitnessSetupError, load_key

    try:
        key = load_key(data_dir, name)
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
) -> None:
    """Serve `POST <prefix>/add-checkpoint` (c2sp.org/tlog-witness): cosign each checkpoint of
    the given logs that is consistent with the last one cosigned, refuse everything else."""
    from codefactory.witness.keys import WitnessSetupError, load_key, prepare_folder
    from codefactory.witness.logs import parse_logs
    from codefactory.witness.protocol import Witness
    from codefactory.witness.server import WitnessServer
    from codefactory.witness.store import WitnessStore

    try:
        logs = parse_logs(log)
        key = load_key(data_dir, name)
        store = WitnessStore(prepare_folder(data_dir))
    except (WitnessSetupError, ValueError) as err:
        fail(str(err))
    server = WitnessServer((host, port), Witness(key=key, store=store, logs=logs), prefix=prefix)
    console.print(f"witness {key.public.encoded()}", highlight=False, soft_wrap=True)
    console.print(f"listening on {server.url}/add-checkpoint", highlight=False, soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
