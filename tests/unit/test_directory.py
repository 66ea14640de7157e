"""The directory of people and identity text: one person per identity, after NFKC and case
folding; control, format and zero-width characters refused wherever an identity appears."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.identity.directory import FileDirectory, IdentityKind, Role, require_person
from codefactory.identity.errors import DirectoryInvalid, IdentityRefused, UnknownPerson
from codefactory.identity.names import check_identity, normalized, same_identity

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0b3RhbGx5LW5vdC1hLXJlYWwta2V5LWJ1dC1maW5l priya"

DIRECTORY = f"""
[people."priya.shah"]
name = "Priya Shah"
roles = ["sponsor"]
ssh_keys = ["{KEY}"]
identities = {{ github = ["Priya-Shah"], jira = ["5b10a2844c20165700ede21g"], unix = ["priya"] }}

[people."sam.okafor"]
name = "Sam Okafor"
roles = ["reviewer", "security"]
identities = {{ github = ["sokafor"] }}
"""


def directory(tmp_path: Path, text: str = DIRECTORY) -> FileDirectory:
    path = tmp_path / "directory.toml"
    path.write_text(text)
    return FileDirectory(path)


def test_sender_identities_resolve_to_one_person_after_normalisation(tmp_path: Path) -> None:
    people = directory(tmp_path)
    priya = people.resolve(IdentityKind.GITHUB, "priya-shah")
    assert priya is not None and priya.id == "priya.shah" and priya.actor == "user:priya.shah"
    # fullwidth letters fold to the same login (NFKC), case does not matter
    assert people.resolve(IdentityKind.GITHUB, "ＰＲＩＹＡ-shah") == priya
    assert people.person("user:Priya.Shah") == priya
    assert priya.has_role(Role.SPONSOR) and not priya.has_role(Role.REVIEWER)
    assert priya.ssh_keys == (KEY,)
    # an identity of one kind says nothing about another kind
    assert people.resolve(IdentityKind.GITLAB, "priya-shah") is None
    with pytest.raises(UnknownPerson, match="gitlab identity 'priya-shah'"):
        require_person(people, IdentityKind.GITLAB, "priya-shah")


@pytest.mark.parametrize(
    "text",
    ["priya.shah\u200b", "priya\u202e.shah", "priya\nshah", "priya\x00", "\u2028priya", " priya"],
)
def test_identities_with_hidden_characters_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(IdentityRefused):
        directory(tmp_path).resolve(IdentityKind.GITHUB, text)
    assert directory(tmp_path).person(text) is None
    assert not same_identity(text, "priya.shah")


def test_the_refusal_names_the_code_point_not_the_character() -> None:
    with pytest.raises(IdentityRefused) as refused:
        check_identity("sam\u200b", what="reviewer")
    assert "U+200B" in str(refused.value) and "\u200b" not in str(refused.value)


@given(st.text(min_size=1, max_size=40))
def test_normalised_identities_compare_as_their_normal_forms(text: str) -> None:
    try:
        folded = normalized(text)
    except IdentityRefused:
        return
    assert same_identity(text, folded)
    assert normalized(folded) == folded  # idempotent: stored and compared forms agree


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[people."a"]\nroles = ["emperor"]\n', "emperor"),
        ('[people."a"]\nidentities = { myspace = ["x"] }\n', "myspace"),
        (
            '[people."a"]\nidentities = { github = ["x"] }\n[people."b"]\n'
            'identities = { github = ["X"] }\n',
            "belongs to both 'a' and 'b'",
        ),
        (
            '[people."a"]\nssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOqQ a@laptop"]\n'
            '[people."b"]\nssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOqQ b@desk"]\n',
            "SSH key ssh-ed25519 …NTE5AAAAIOqQ belongs to both 'a' and 'b'",
        ),
        ('[people."a\u200b"]\n', "U+200B"),
        ('[people."Not Valid"]\n', "lower case"),
        ('[people."a"]\nssh_keys = ["hello"]\n', "not an OpenSSH public key"),
        ('[people."a"]\nmood = "happy"\n', "unknown keys"),
        ("[people\n", "directory"),
        ('[groups."x"]\n', "unknown tables"),
    ],
)
def test_a_bad_directory_names_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DirectoryInvalid, match="directory .*directory.toml") as invalid:
        directory(tmp_path, text).people()
    assert message in str(invalid.value)


def test_no_directory_knows_nobody_and_a_missing_file_is_an_error(tmp_path: Path) -> None:
    assert FileDirectory(None).resolve(IdentityKind.GITHUB, "priya-shah") is None
    with pytest.raises(DirectoryInvalid, match="No such file"):
        FileDirectory(tmp_path / "absent.toml").people()


def test_the_directory_is_read_again_when_its_file_changes(tmp_path: Path) -> None:
    people = directory(tmp_path)
    assert [p.id for p in people.people()] == ["priya.shah", "sam.okafor"]
    (tmp_path / "directory.toml").write_text('[people."ops.bot-owner"]\nname = "Ops"\n')
    assert [p.id for p in people.people()] == ["ops.bot-owner"]
