"""Baseline comparison, fingerprints and the gate's judgement of findings (pure logic)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from codefactory.domain import Change, FileChange, Finding, Severity
from codefactory.verify.baseline import compare
from codefactory.verify.cache import MemoryVerifyCache, findings_from_json, findings_to_json
from codefactory.verify.findings import cannot_judge, fingerprinted, line_text


def finding(rule: str = "B602", line: int = 2, fingerprint: str = "", **extra: object) -> Finding:
    return Finding(
        check="sast",
        rule=rule,
        message="shell=True",
        severity=Severity.HIGH,
        path="app.py",
        line=line,
        fingerprint=fingerprint,
        **extra,  # type: ignore[arg-type]
    )


def test_the_same_line_moved_by_the_change_is_unchanged_and_a_new_one_is_new() -> None:
    base_text = b"import subprocess\nsubprocess.call(cmd, shell=True)\n"
    new_text = b"import subprocess\n\n\nsubprocess.call(cmd, shell=True)\neval(x)\n"
    base = fingerprinted(
        [finding(line=2)], Change(files=(FileChange(path="app.py", content=base_text),))
    )
    after = fingerprinted(
        [finding(line=4), finding(rule="B307", line=5)],
        Change(files=(FileChange(path="app.py", content=new_text),)),
    )
    moved, added = compare(after, base)
    assert (moved.baseline_state, added.baseline_state) == ("unchanged", "new")
    assert moved.fingerprint == base[0].fingerprint


def test_a_second_copy_of_an_existing_finding_is_new() -> None:
    compared = compare(
        [finding(fingerprint="a"), finding(fingerprint="a")], [finding(fingerprint="a")]
    )
    assert [f.baseline_state for f in compared] == ["unchanged", "new"]


def test_a_finding_the_change_removed_is_absent_and_never_blocks() -> None:
    compared = compare([], [finding(fingerprint="gone")])
    [absent] = compared
    assert absent.baseline_state == "absent" and not absent.blocking


def test_without_a_baseline_everything_is_new() -> None:
    assert [f.baseline_state for f in compare([finding(fingerprint="a")], None)] == ["new"]


def test_could_not_judge_is_never_matched_against_the_base() -> None:
    hung = Finding(check="tests", rule="tests-timed-out", message="hung", severity=Severity.HIGH)
    [compared] = compare([hung], [hung])
    assert compared.baseline_state == "new"
    assert cannot_judge("tests-timed-out") and cannot_judge("lint-could-not-run")
    assert cannot_judge("check-crashed") and not cannot_judge("F401")


def test_adding_an_inline_suppression_does_not_make_a_finding_new() -> None:
    plain = b"subprocess.call(cmd, shell=True)\n"
    suppressed = b"subprocess.call(cmd,  shell=True)  # nosec B602\n"
    assert line_text(plain, 1) == line_text(suppressed, 1) == "subprocess.call(cmd, shell=True)"
    assert line_text(b"password = 'x'  # pragma: allowlist secret\n", 1) == "password = 'x'"


def test_findings_survive_the_cache() -> None:
    cache = MemoryVerifyCache()
    from codefactory.verify.cache import CacheKey

    key = CacheKey(check="sast", commit="c0ffee", digest="d", path="app.py")
    stored = [replace(finding(fingerprint="f"), baseline_state="new")]
    cache.put(key, findings_to_json(stored))
    assert findings_from_json(cache.get(key) or "") == stored
    assert cache.get(replace(key, path="other.py")) is None


@given(
    base=st.lists(st.sampled_from("abcd"), max_size=6),
    found=st.lists(st.sampled_from("abcd"), max_size=6),
)
def test_comparison_partitions_both_sides(base: list[str], found: list[str]) -> None:
    compared = compare(
        [finding(fingerprint=f) for f in found], [finding(fingerprint=f) for f in base]
    )
    states = [f.baseline_state for f in compared]
    assert len([s for s in states if s != "absent"]) == len(found)
    assert states.count("unchanged") + states.count("absent") == len(base)
    for key in "abcd":
        unchanged = [
            f for f in compared if f.fingerprint == key and f.baseline_state == "unchanged"
        ]
        assert len(unchanged) == min(found.count(key), base.count(key))
