"""Which unprivileged host ids the sandbox runs as, and the accounts it sees."""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from codefactory.sandbox.errors import SandboxUnavailable
from codefactory.sandbox.hostids import (
    DEFAULT_ID,
    HostIdRange,
    HostIds,
    IdTable,
    host_id_range,
    host_ids,
    passwd_lines,
    subordinate_start,
)


def test_the_subordinate_range_of_the_codefactory_entry(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\ncodefactory:231072:65536\nbad:x:1\n")
    assert subordinate_start(subuid) == 231072
    assert subordinate_start(subuid, "alice") == 100000
    assert subordinate_start(subuid, "nobody-here") is None
    assert subordinate_start(tmp_path / "missing") is None


def test_an_empty_range_does_not_count(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("codefactory:231072:0\n")
    assert subordinate_start(subuid) is None


def test_explicit_ids_win_and_the_default_is_unused() -> None:
    assert host_ids(2_000_000_000, 2_000_000_001) == HostIds(2_000_000_000, 2_000_000_001)
    chosen = host_ids()
    assert chosen.uid != 0 and chosen.gid != 0
    if not Path("/etc/subuid").is_file():
        assert chosen.uid == DEFAULT_ID


@pytest.mark.parametrize("uid", [0, max(p.pw_uid for p in pwd.getpwall() if p.pw_uid < 65534)])
def test_root_or_an_existing_account_is_refused(uid: int) -> None:
    with pytest.raises(SandboxUnavailable):
        host_ids(uid, 2_000_000_000)


def test_root_gid_is_refused() -> None:
    with pytest.raises(SandboxUnavailable, match="gid 0"):
        host_ids(2_000_000_000, 0)


def test_the_sandbox_sees_none_of_the_hosts_accounts() -> None:
    users, groups = passwd_lines(HostIds(2_000_000_000, 2_000_000_001))
    names = [line.split(":")[0] for line in users.splitlines()]
    assert names == ["root", "sandbox", "nobody"]
    assert "sandbox:x:2000000000:2000000001:" in users
    assert "sandbox:x:2000000001:" in groups
    users, _ = passwd_lines(None)
    assert [line.split(":")[0] for line in users.splitlines()] == ["root", "nobody"]


def test_each_repository_gets_its_own_ids_the_same_every_time(tmp_path: Path) -> None:
    ids = HostIdRange(uid_start=2_000_000_000, gid_start=2_100_000_000, count=3)
    table = IdTable(tmp_path / "ids.json", ids)
    first = table.for_repository("/srv/repos/payments")
    assert first == HostIds(2_000_000_000, 2_100_000_000)
    assert table.for_repository("/srv/repos/ledger") == HostIds(2_000_000_001, 2_100_000_001)
    # another process reading the same file agrees; ids are never shared, whatever the path
    assert IdTable(tmp_path / "ids.json", ids).for_repository("/srv/repos/payments") == first
    table.for_repository("/srv/repos/third")
    with pytest.raises(SandboxUnavailable, match="every one of the 3 sandbox ids is taken"):
        table.for_repository("/srv/repos/fourth")


def test_a_range_that_holds_an_account_is_refused() -> None:
    taken = max(p.pw_uid for p in pwd.getpwall() if p.pw_uid < 65534)
    with pytest.raises(SandboxUnavailable, match="belongs to the account"):
        host_id_range(taken - 5, 2_000_000_000, 10)
    assert host_id_range(2_000_000_000, 2_000_000_000, 10).count == 10


def test_the_subordinate_entry_gives_the_range_and_its_size(tmp_path: Path) -> None:
    from codefactory.sandbox.hostids import subordinate_range

    subuid = tmp_path / "subuid"
    subuid.write_text("codefactory:300000:1000\n")
    assert subordinate_range(subuid) == (300000, 1000)


def test_a_broken_or_shrunk_table_is_a_clear_error(tmp_path: Path) -> None:
    ids = HostIdRange(uid_start=2_000_000_000, gid_start=2_000_000_000, count=5)
    (tmp_path / "ids.json").write_text('{"/srv/a": 4}')
    with pytest.raises(SandboxUnavailable, match="outside the range of 2"):
        IdTable(tmp_path / "ids.json", HostIdRange(2_000_000_000, 2_000_000_000, 2)).for_repository(
            "/srv/a"
        )
    (tmp_path / "ids.json").write_text("{not json")
    with pytest.raises(SandboxUnavailable, match="is not a table of sandbox ids"):
        IdTable(tmp_path / "ids.json", ids).for_repository("/srv/a")
