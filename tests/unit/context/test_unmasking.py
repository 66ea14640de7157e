"""Placeholders go back to their values only where an edit must match the file's real text,
and a value the run has seen is hidden wherever it reappears (the red team's round trip:
`read_file("<SECRET_1>")` answered `no such file: <the secret>`)."""

from __future__ import annotations

from codefactory.context.masking import Masker, Pseudonyms
from codefactory.context.masking.pseudonyms import PLACEHOLDER
from codefactory.context.settings import MaskingSettings
from codefactory.engines.agent.gate import restored

SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"


def unmasker(pseudonyms: Pseudonyms):  # type: ignore[no-untyped-def]
    def unmask(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: pseudonyms.original(m.group(0)) or m.group(0), text)

    return unmask


def test_only_an_edit_s_matching_text_gets_real_values() -> None:
    pseudonyms = Pseudonyms()
    email = pseudonyms.placeholder("EMAIL_ADDRESS", "jane@example.com")
    secret = pseudonyms.placeholder("SECRET_KEYWORD", SECRET)
    unmask = unmasker(pseudonyms)
    edit = restored(
        "edit_file",
        {"path": "a.py", "old": f"to = '{email}'", "new": f"to = '{email}'  # {secret}"},
        unmask,
    )
    assert edit["old"] == "to = 'jane@example.com'"
    assert edit["new"] == f"to = 'jane@example.com'  # {secret}"  # not in `old`: stays masked
    for tool, arguments in (
        ("read_file", {"path": secret}),
        ("run", {"command": f"echo '{secret}' | rev"}),
        ("search", {"pattern": email}),
    ):
        assert restored(tool, arguments, unmask) == arguments
    patch = (
        "--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n"
        f" keep = '{email}'\n-old = 1\n+new = '{email}' + '{secret}'\n"
    )
    restored_patch = restored("apply_patch", {"patch": patch}, unmask)["patch"]
    assert f"+new = 'jane@example.com' + '{secret}'" in restored_patch
    assert " keep = 'jane@example.com'" in restored_patch


def test_a_value_seen_once_is_hidden_wherever_it_reappears() -> None:
    pseudonyms = Pseudonyms()
    masker = Masker(MaskingSettings(), pseudonyms)
    first = masker.mask(f"export AWS_SECRET_ACCESS_KEY={SECRET}")
    assert SECRET not in first.text
    again = masker.mask(f"no such file: {SECRET}")  # no keyword around it this time
    assert again.text == "no such file: <SECRET_KEYWORD_1>"
