"""The dashboard's parts without a server: the patch parsed and findings placed by their
new-file line, package files read beneath the folder opened once (no link followed at any
component, no FIFO waited on) and shown only when they match the manifest, the refused
verdicts counted per person, and the queue's choice of runs for each role."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codefactory.domain import AuditEvent, ChangeKind, Finding, Run, RunState, Severity
from codefactory.identity.directory import Person, Role
from codefactory.package.manifest import MANIFEST, manifest_files, write_manifest
from codefactory.web.dashboard.diff import diff_view
from codefactory.web.dashboard.package_check import PackageReading, opened_package
from codefactory.web.dashboard.package_files import Missing, rationale, read_json, read_text
from codefactory.web.dashboard.queue import queue_page
from codefactory.web.dashboard.refusals import EVENT, VerdictRefusals

PATCH = """diff --git a/svc/a.py b/svc/a.py
index 1111111..2222222 100644
--- a/svc/a.py
+++ b/svc/a.py
@@ -1,4 +1,4 @@
 one
-two
+TWO <script>
 three
 four
@@ -10,3 +10,4 @@ def f():
 ten
+ten and a half
 eleven
--- not a header: a removed line
diff --git a/old.py b/old.py
deleted file mode 100644
index 3333333..0000000
--- a/old.py
+++ /dev/null
@@ -1 +0,0 @@
-gone
"""


def finding(path: str, line: int, rule: str) -> Finding:
    return Finding(
        check="lint", rule=rule, message=rule, severity=Severity.LOW, path=path, line=line
    )


def test_findings_land_on_the_added_line_they_name_and_others_stay_apart() -> None:
    placed = [finding("svc/a.py", 2, "ON-ADD"), finding("svc/a.py", 11, "ON-ADD-2")]
    apart = [
        finding("svc/a.py", 1, "CONTEXT"),  # unchanged line of a touched file
        finding("svc/a.py", 3, "CONTEXT-2"),
        finding("other.py", 2, "UNTOUCHED"),
        finding("svc/a.py", 0, "FILE-LEVEL"),
    ]
    diff = diff_view(PATCH, placed + apart)
    first, deleted = diff.files
    assert first.path == "svc/a.py" and first.added == {2, 11}
    assert first.lines[-1].kind == "del" and first.lines[-1].old == 12
    assert deleted.path == "old.py" and deleted.added == set()
    by_new = {line.new: line for line in first.lines if line.kind == "add"}
    assert [f.rule for f in by_new[2].findings] == ["ON-ADD"]
    assert [f.rule for f in by_new[11].findings] == ["ON-ADD-2"]
    assert [f.rule for f in diff.outside] == [f.rule for f in apart]
    context = [(line.old, line.new) for line in first.lines if line.kind == "context"]
    assert context == [(1, 1), (3, 3), (4, 4), (10, 10), (11, 12)]
    assert [line.kind for line in deleted.lines][-1] == "del"  # `-gone`, not a header
    assert [line.kind for line in deleted.lines].count("del") == 1
    assert '<span class="gi">+TWO &lt;script&gt;</span>' in str(by_new[2].html)
    assert diff.truncated == 0


def built(folder: Path) -> dict[str, str]:
    """A package folder as the builder leaves it, and its manifest's files."""
    folder.mkdir()
    (folder / "evidence").mkdir()
    (folder / "evidence" / "lint.txt").write_text("a.py:5: Q000\n")
    (folder / "cab.json").write_text('{"risk": "low"}')
    (folder / "risk.json").write_text('{"level": "low"}')
    (folder / "rollback.md").write_text("git revert abc\n")
    (folder / "summary.md").write_text("# t\n\n## Rationale (written by the engine)\n\nwhy\n")
    write_manifest(folder)
    return manifest_files(folder, (folder / MANIFEST).read_bytes())


def reading(folder: Path, root: Path | None, files: dict[str, str]) -> PackageReading:
    return PackageReading(root=root, folder=folder, files=files)


def test_package_files_are_shown_only_as_the_manifest_lists_them(tmp_path: Path) -> None:
    package = tmp_path / "package"
    files = built(package)
    (package / "risk.json").write_text('{"level": "none"}')  # rewritten after the build
    (package / "rollback.md").unlink()
    (package / "extra.md").write_text("added")
    with opened_package(str(package)) as root:
        r = reading(package, root, files)
        assert read_json(r.read, "cab.json") == {"risk": "low"}
        risk = read_json(r.read, "risk.json")
        assert isinstance(risk, Missing) and "risk.json is not as it was built" in risk.why
        assert read_text(r.read, "rollback.md") == Missing(
            "not in the package, though its manifest lists it"
        )
        assert isinstance(read_text(r.read, "extra.md"), Missing)
        assert read_text(r.read, "nothing.md") == Missing("not in the package")
        assert rationale(r.read) == [
            ("Rationale (written by the engine)", "why"),
            ("Context the engine was given", Missing("not in the package's summary")),
        ]
        assert r.evidence() == (("lint.txt", "a.py:5: Q000\n"),)
    assert r.problems == [
        "risk.json is not as it was built: the package was rewritten after it was built",
        "rollback.md is listed in the manifest but missing",
        "extra.md was added after the package was built",
    ]
    assert reading(package, None, files).read("cab.json") == Missing("the run has no package")
    assert PackageReading(root=None, folder=package).read("cab.json") == Missing(
        "the run has no package"
    )


def test_a_link_anywhere_on_the_path_or_a_fifo_is_refused_without_blocking(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "lint.txt").write_text("TOP SECRET outside the package\n")
    (outside / "cab.json").write_text('{"risk": "low"}')  # what the manifest lists
    package = tmp_path / "package"
    files = built(package)
    (package / "evidence" / "lint.txt").unlink()
    (package / "evidence").rmdir()
    os.symlink(outside, package / "evidence")  # a linked folder
    (package / "cab.json").unlink()
    os.symlink(outside / "cab.json", package / "cab.json")  # a linked file, same bytes
    (package / "risk.json").unlink()
    os.mkfifo(package / "risk.json")  # would block an open() without O_NONBLOCK
    (package / "sub").mkdir()
    os.symlink(outside, package / "sub" / "link")
    shown: dict[str, Any] = {}
    with opened_package(str(package)) as root:
        r = reading(package, root, files)

        def read_all() -> None:
            shown["evidence"] = r.evidence()
            shown["lint"] = r.read("evidence/lint.txt")
            shown["cab"] = r.read("cab.json")
            shown["risk"] = r.read("risk.json")
            shown["deep"] = r.read("sub/link/lint.txt")

        worker = threading.Thread(target=read_all, daemon=True)
        worker.start()
        worker.join(5)
        assert not worker.is_alive(), "a package read blocked"
    assert all(isinstance(value, Missing) for value in shown.values()), shown
    assert "TOP SECRET" not in repr(shown)
    assert r.problems == [
        "evidence/ is a symlink, not a folder",
        "evidence/lint.txt: a folder on its path is a symbolic link",
        "cab.json is a symlink, not a regular file",
        "risk.json is a fifo, not a regular file",
        "sub/link/lint.txt: a folder on its path is a symbolic link",
    ]


def test_a_package_folder_that_is_not_there_is_no_package(tmp_path: Path) -> None:
    with opened_package(str(tmp_path / "gone")) as root:
        assert root is None
        assert PackageReading(root=root, folder=tmp_path).evidence() == Missing(
            "the run has no package"
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # the start of a minute

    def __call__(self) -> float:
        return self.now


def test_refused_verdicts_past_the_budget_are_counted_in_one_event_per_person_and_minute() -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    def record(event: AuditEvent) -> int:
        events.append((event.name, {"actor": event.actor, "run_id": event.run_id, **event.data}))
        return len(events)

    clock = Clock()
    refusals = VerdictRefusals(record, per_minute=3, clock=clock)
    dana = Person(id="dana", name="Dana", roles=frozenset())
    alex = Person(id="alex", name="Alex", roles=frozenset({Role.REVIEWER}))
    for _ in range(3):
        assert not refusals.exhausted(dana)
        refusals.refused(dana)
    assert refusals.exhausted(dana) and not refusals.exhausted(alex)
    for _ in range(5):
        refusals.throttled(dana, "r-1")
    refusals.throttled(alex, "r-2")
    assert events == [] and refusals.retry_after() == 60
    clock.now += 61  # the minute is over: its counts are written, the budget is back
    refusals.publish_ended()
    assert not refusals.exhausted(dana)
    assert sorted((name, data["actor"], data["count"]) for name, data in events) == [
        (EVENT, "user:alex", 1),
        (EVENT, "user:dana", 5),
    ]
    dana_event = next(data for _, data in events if data["actor"] == "user:dana")
    assert dana_event["first_run_id"]["text"] == "r-1" and dana_event["per_minute"] == 3
    refusals.throttled(dana, "r-3")
    refusals.flush()  # at shutdown
    assert [data["count"] for _, data in events[2:]] == [1]


def run(run_id: str, state: RunState, sponsor: str = "priya") -> Run:
    return Run(
        id=run_id, trigger_id="t", kind=ChangeKind.FIX_LINT, repository="acme/pay",
        sponsor=sponsor, agent_id="agent:x", state=state, reason="", base_commit="",
        head_commit="", branch="", package_dir="", created_at=datetime.now(UTC),
    )  # fmt: skip


def test_each_role_sees_the_runs_waiting_for_it_and_never_its_own() -> None:
    runs = [
        run("r-review", RunState.IN_REVIEW),
        run("r-own", RunState.IN_REVIEW, sponsor="Alex"),
        run("r-qa", RunState.IN_QA),
        run("r-uat", RunState.IN_UAT),
        run("r-done", RunState.HANDED_OFF),
    ]
    alex = Person(id="alex", name="Alex", roles=frozenset({Role.REVIEWER, Role.QA}))
    page = queue_page(runs, viewer=alex, triggers=lambda _: None)
    assert [(w.run.id, w.task) for w in page.waiting] == [
        ("r-review", "review"),
        ("r-qa", "QA sign-off"),
    ]
    uat = Person(id="uma", name="Uma", roles=frozenset({Role.UAT}))
    assert [w.run.id for w in queue_page(runs, viewer=uat, triggers=lambda _: None).waiting] == [
        "r-uat"
    ]
    assert dict(page.counts) == {"handed_off": 1, "in_qa": 1, "in_review": 2, "in_uat": 1}
