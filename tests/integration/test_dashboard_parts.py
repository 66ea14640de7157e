"""The dashboard's parts without a server: the patch parsed and findings placed by their
new-file line, package files read without following links, and the queue's choice of runs
for each role."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from codefactory.domain import ChangeKind, Finding, Run, RunState, Severity
from codefactory.identity.directory import Person, Role
from codefactory.web.dashboard.diff import diff_view
from codefactory.web.dashboard.package_files import Missing, rationale, read_json, read_text
from codefactory.web.dashboard.queue import queue_page

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


def test_a_link_or_a_folder_in_the_package_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text('{"password": "x"}')
    package = tmp_path / "package"
    package.mkdir()
    os.symlink(outside, package / "cab.json")
    (package / "risk.json").mkdir()
    (package / "rollback.md").write_text("git revert abc\n")
    (package / "summary.md").write_text("# t\n\n## Rationale (written by the engine)\n\nwhy\n")
    assert isinstance(read_json(str(package), "cab.json"), Missing)
    assert read_json(str(package), "risk.json") == Missing(
        "not in the package (not a regular file)"
    )
    assert read_text(str(package), "rollback.md") == "git revert abc\n"
    assert read_text(str(package), "nothing.md") == Missing("not in the package")
    assert read_text("", "rollback.md") == Missing("the run has no package")
    assert rationale(str(package)) == [
        ("Rationale (written by the engine)", "why"),
        ("Context the engine was given", Missing("not in the package's summary")),
    ]


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
