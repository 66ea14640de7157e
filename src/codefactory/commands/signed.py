"""What commands that act for a person share: the `--as`, `--key`, `--statement` and
`--signature` options, signing with `ssh-keygen -Y sign`, and the governance desk that checks
signed governance statements."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codefactory.commands.common import fail

if TYPE_CHECKING:
    from codefactory.factory import Factory
    from codefactory.identity.governance import GovernanceDesk
    from codefactory.identity.statements import VerifiedStatement

PersonOption = Annotated[
    str, typer.Option("--as", help="Your person id in the directory (you sign as them).")
]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="Your SSH key: a private key file, or a public key file whose private half "
        "ssh-agent holds.",
        show_default=False,
    ),
]
StatementOption = Annotated[
    Path | None,
    typer.Option("--statement", help="A statement signed elsewhere.", show_default=False),
]
SignatureOption = Annotated[
    Path | None,
    typer.Option(
        "--signature", help="Its SSH signature (`ssh-keygen -Y sign`).", show_default=False
    ),
]


def signed_statement(
    build_statement: Callable[[], bytes],
    *,
    key: Path | None,
    statement: Path | None,
    signature: Path | None,
    namespace: str,
    how_to_sign: str,
) -> tuple[bytes, str]:
    """The statement bytes and its armored signature: read from `--statement`/`--signature`,
    or built now and signed with `--key`. Exits with a message saying how to sign when
    neither is given: a bare `--as` is no proof of who acts."""
    from codefactory.identity.errors import IdentityError
    from codefactory.identity.ssh_signatures import SshSignatureError, sign

    if statement is not None or signature is not None:
        if statement is None or signature is None:
            fail("--statement and --signature go together")
        try:
            return statement.read_bytes(), signature.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as err:
            fail(f"cannot read the signed statement: {err}")
    if key is None:
        fail(
            "a name alone proves nothing: sign with your SSH key (--key ~/.ssh/id_ed25519, "
            f"a key the directory lists as yours), or {how_to_sign} and sign it with "
            f"`ssh-keygen -Y sign -f KEY -n {namespace} FILE`, then pass --statement FILE "
            "--signature FILE.sig"
        )
    try:
        body = build_statement()
        return body, sign(body, key.expanduser(), namespace)
    except (SshSignatureError, IdentityError) as err:
        fail(str(err))


def governance_desk(factory: Factory) -> GovernanceDesk:
    """The governance desk over this factory's audit log and directory."""
    from codefactory.identity.governance import GovernanceDesk, statement_verifier

    verifier = statement_verifier(factory.settings, factory.identity.directory)
    return GovernanceDesk(audit=factory.audit, verifier=verifier)


def authorize_governance(
    factory: Factory,
    action: str,
    target: str,
    person: str,
    reason: str,
    key: Path | None,
    statement: Path | None,
    signature: Path | None,
) -> VerifiedStatement:
    """The signed governance statement for `action` (a `GovernanceAction` value such as
    `agent-activate` or `policy-propose`) on `target`: read from `--statement`/`--signature`
    or signed now with `--key` in the governance namespace, then checked by the governance
    desk (role, key, time, replay) and audited. Exits with the reason when it does not count."""
    from codefactory.identity.governance import GovernanceAction
    from codefactory.identity.ssh_signatures import GOVERNANCE_NAMESPACE
    from codefactory.identity.statements import StatementRefused, governance_statement

    body, sig = signed_statement(
        lambda: governance_statement(action=action, target=target, person=person, reason=reason),
        key=key,
        statement=statement,
        signature=signature,
        namespace=GOVERNANCE_NAMESPACE,
        how_to_sign=f"print the statement with `codefactory identity statement {action} "
        f"{target} --as YOU`",
    )
    try:
        return governance_desk(factory).authorize(
            body, sig, action=GovernanceAction(action), target=target, claimed=person
        )
    except StatementRefused as err:
        fail(str(err))
