"""Audit commands: `audit verify`, `checkpoint`, `export`, `prove`, `explain`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from codefactory.commands.common import (
    JsonOption,
    build,
    console,
    errors,
    fail,
    print_json,
)
from codefactory.terminal import inert_json, shown

audit_app = typer.Typer(help="The tamper-evident Merkle audit log.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A checkpoint saved earlier: prove the log still extends it."),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Do not ask the witnesses whether they cosigned a later checkpoint.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Recompute every leaf and the tree; name the first event altered, removed, inserted or
    reordered, and check every signed checkpoint (and a saved one) still holds. With witnesses
    configured (audit.witnesses), the latest checkpoint must carry the quorum's cosignatures
    and every cosigned root must match, and (unless --offline) the witnesses are asked whether
    they cosigned a later checkpoint (a rollback); without, it warns the log is unwitnessed."""
    note = None
    if checkpoint is not None:
        try:
            note = checkpoint.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            fail(f"cannot read the checkpoint {checkpoint}: {err}")
    from codefactory.audit.witnessing import WitnessedAuditLog

    audit = build().audit
    if isinstance(audit, WitnessedAuditLog):
        report = audit.verify(checkpoint=note, offline=offline)
    else:
        report = audit.verify(checkpoint=note)
    from codefactory.commands.common import state
    from codefactory.identity.trust_report import warn_unprotected_keys

    custody = warn_unprotected_keys(state.settings, as_json=as_json)  # keys: said loudly
    if as_json:
        # `witnessed`, `witnesses`, `warnings`, `siem` included, and where keys live
        print_json({**report.as_dict(), "key_custody": custody})
    else:
        for warning in report.warnings:
            errors.print(f"[bold yellow]WARNING:[/] {shown(warning)}", highlight=False)
        if report.ok:
            console.print(f"audit log verified: {shown(report.reason)}", highlight=False)
    if not report.ok:
        fail(f"audit log verification failed: {report.reason}")  # names from the log


@audit_app.command("checkpoint")
def audit_checkpoint(as_json: JsonOption = False) -> None:
    """Print the latest signed checkpoint (C2SP signed note), signing one if the log grew.

    Save it anywhere outside the factory; `audit verify --checkpoint FILE` later proves the
    log still extends it. With witnesses configured, they are asked to cosign it (again, if
    they had not) and their cosignature lines follow the log's signature.
    """
    from codefactory.audit import AuditError
    from codefactory.audit.witnessing import WitnessedAuditLog

    audit = build().audit
    try:
        signed = audit.checkpoint()
    except AuditError as err:
        fail(str(err))
    note = audit.cosigned_note(signed) if isinstance(audit, WitnessedAuditLog) else signed.note
    if as_json:
        print_json(
            {
                **signed.checkpoint.as_dict(),
                "note": note,
                "verifier_key": signed.verifier_key,
            }
        )
    else:
        sys.stdout.write(note)


@audit_app.command("export")
def audit_export(
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Every leaf as a JSON line: its index, its canonical JSON (the leaf bytes, RFC 8785) and
    its RFC 9162 leaf hash, so anyone can rebuild the tree with their own code."""
    handle = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for leaf in build().audit.leaves():
            line = {
                "index": leaf.seq,
                "leaf": leaf.leaf_bytes().decode("utf-8"),
                "leaf_hash": leaf.leaf_hash,
            }
            handle.write(inert_json(json.dumps(line, ensure_ascii=False, sort_keys=True)) + "\n")
    except ValueError as err:
        fail(f"a stored leaf cannot be exported ({err}); run `codefactory audit verify`")
    finally:
        if output:
            handle.close()


@audit_app.command("prove")
def audit_prove(
    index: Annotated[int | None, typer.Option(help="Leaf index of an inclusion proof.")] = None,
    size: Annotated[
        int | None, typer.Option(help="Tree size (default: the latest signed checkpoint).")
    ] = None,
    consistency: Annotated[
        tuple[int, int] | None,
        typer.Option(help="Sizes M N: prove tree M is a prefix of tree N.", show_default=False),
    ] = None,
) -> None:
    """Print an RFC 9162 inclusion proof (`--index I [--size N]`) or consistency proof
    (`--consistency M N`) as JSON with hex hashes."""
    from codefactory.audit import AuditError

    if (index is None) == (consistency is None):
        fail("give either --index I [--size N] or --consistency M N")
    audit = build().audit
    try:
        signed = audit.checkpoint()
        if consistency is not None:
            print_json(
                {**audit.consistency_proof(*consistency).as_dict(), "checkpoint": signed.note}
            )
            return
        assert index is not None
        tree_size = signed.checkpoint.size if size is None else size
        proof = audit.inclusion_proof(index, tree_size)
    except AuditError as err:
        fail(str(err))
    document = proof.as_dict()
    if tree_size == signed.checkpoint.size:
        document["checkpoint"] = signed.note
    print_json(document)


@audit_app.command("explain")
def audit_explain(run_id: str, as_json: JsonOption = False) -> None:
    """For a reviewer or an examiner: who acted, on whose behalf, under which token and
    decision, every step with its audit index, the signed commit, the approvals, and a proof
    that each cited event is in the signed log."""
    from codefactory.audit.explain import explain_run, render_explanation
    from codefactory.factory import commit_verifier

    factory = build()
    explanation = explain_run(factory, run_id, commits=commit_verifier(factory.settings))
    if explanation is None:
        fail(f"no run with id {run_id!r}")
    if as_json:
        print_json(explanation)
    else:
        render_explanation(console, explanation)
