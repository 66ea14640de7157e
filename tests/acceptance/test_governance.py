"""Issue 4's acceptance check through the CLI: an examiner checks the factory's work with
standard tools (git, their own RFC 9162 code) and a tampered log is named. (Each kind of bad
input has its own integration test: `test_identity_*`, `test_audit_*`.)"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

from codefactory.review.local_forge import forge_name
from tests.acceptance.conftest import Cli, ticket_file
from tests.acceptance.test_bad_input import _sample_repo
from tests.directory_helpers import directory_env
from tests.integration.signed_people import reviewer_directory
from tests.store_sql import store_sql


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written out independently of the factory's code."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def test_an_examiner_checks_a_run_with_standard_tools(cli: Cli, tmp_path: Path) -> None:
    repo = _sample_repo(tmp_path)
    ticket = ticket_file(tmp_path, "SVC-102")
    run = cli.json("trigger", "--repo", str(repo), "--ticket", str(ticket))
    assert run["state"] == "in_review", run["reason"]
    directory, key = reviewer_directory(tmp_path / "people")
    cli.env.update(directory_env(directory))
    approved = cli.json("review", "approve", run["id"], "--as", "jordan.lee", "--key", str(key))
    assert approved["state"] == "handed_off", approved["reason"]

    # A checkpoint saved outside the factory, and every leaf exported.
    saved = tmp_path / "checkpoint.txt"
    saved.write_text(cli("audit", "checkpoint", check=True).stdout)
    origin, size, root_b64 = saved.read_text().split("\n")[:3]
    export = tmp_path / "log.jsonl"
    cli("audit", "export", "--output", str(export), check=True)
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(int(size)))
    leaves = [hashlib.sha256(b"\x00" + line["leaf"].encode()).digest() for line in lines]
    assert [leaf.hex() for leaf in leaves] == [line["leaf_hash"] for line in lines]
    assert mth(leaves) == base64.b64decode(root_b64)

    # The explanation: token as issued, signed commit, provenance, proofs.
    explained = cli.json("audit", "explain", run["id"])
    assert explained["delegation"]["claims"]["sub"] == run["sponsor"]
    assert explained["delegation"]["token"].count(".") == 2
    assert explained["commit"]["signature"]["status"] == "G"
    assert explained["provenance"]["verified"] and all(p["verified"] for p in explained["proofs"])
    commit_step = next(s for s in explained["steps"] if s["name"] == "commit-requested")
    proof = json.loads(
        cli("audit", "prove", "--index", str(commit_step["index"]), check=True).stdout
    )
    assert proof["leaf_hash"] == lines[commit_step["index"]]["leaf_hash"]
    assert proof["checkpoint"] == saved.read_text()

    # Plain git checks the agent's signature with the published allowed_signers.
    signers = tmp_path / "allowed_signers"
    cli("identity", "allowed-signers", "--output", str(signers), check=True)
    forge = cli.data_dir / "forge" / forge_name(run["repository"])
    verified = subprocess.run(
        ["git", "-C", str(forge), "-c", f"gpg.ssh.allowedSignersFile={signers}",
         "verify-commit", run["head_commit"]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr

    # An edited row is named, against the checkpoint the examiner saved.
    with store_sql(cli.data_dir) as db:
        db.execute(f"UPDATE audit_events SET actor = 'mallory' WHERE seq = {commit_step['index']}")
    tampered = cli("audit", "verify", "--checkpoint", str(saved))
    assert tampered.returncode == 1
    assert f"event {commit_step['index']} (commit-requested) was altered" in tampered.stderr
