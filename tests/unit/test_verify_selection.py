"""Test selection from a base commit's map: what reaches the change, or the whole suite and why."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from codefactory.domain import FileChange
from codefactory.verify.diff import DiffedChange, added_lines, hunks
from codefactory.verify.regions import body_owner, function_regions
from codefactory.verify.selection import select_tests
from codefactory.verify.testmap import FileMap, TestInfo, TestMap

SOURCE = b'''"""pkg.calc"""

RATE = 2


def add(a, b):
    return a + b


def scale(x):
    return x * RATE


class Account:
    fee = 1

    def charge(self, amount):
        def rounded(v):
            return round(v, 2)

        return rounded(amount + self.fee)


@decorated
def tagged():
    return 1
'''
TESTS = b"def test_add():\n    assert add(1, 2) == 3\n"


def recorded_map() -> TestMap:
    tests = {
        "tests/test_calc.py::test_add": ["tests/test_calc.py::test_add", ()],
        "tests/test_calc.py::test_scale[1]": ["tests/test_calc.py::test_scale", ()],
        "tests/test_calc.py::test_scale[2]": ["tests/test_calc.py::test_scale", ()],
        "tests/test_bank.py::test_charge": ["tests/test_bank.py::test_charge", ("account",)],
        "tests/test_bank.py::test_balance": ["tests/test_bank.py::test_balance", ("account",)],
        "tests/test_other.py::test_x": ["tests/test_other.py::test_x", ()],
    }
    return TestMap(
        commit="c0ffee",
        tests={
            node: TestInfo(file=node.split("::")[0], selector=sel, fixtures=tuple(fx))
            for node, (sel, fx) in tests.items()
        },
        files={
            "pkg/calc.py": FileMap(
                sha256=hashlib.sha256(SOURCE).hexdigest(),
                functions={
                    "add": ("tests/test_calc.py::test_add",),
                    "scale": (
                        "tests/test_calc.py::test_scale[1]",
                        "tests/test_calc.py::test_scale[2]",
                    ),
                    "Account.charge": ("fixture|account",),
                    "Account.charge.<locals>.rounded": ("fixture|account",),
                    "tagged": ("",),
                },
                module=("",),
            ),
            "tests/test_calc.py": FileMap(
                sha256=hashlib.sha256(TESTS).hexdigest(),
                functions={"test_add": ("tests/test_calc.py::test_add",)},
                module=("",),
            ),
        },
    )


def changed(path: str, base: bytes | None, new: bytes | None) -> DiffedChange:
    return DiffedChange(files=(FileChange(path=path, content=new),), base={path: base})


def edit(old: bytes, new: bytes) -> DiffedChange:
    assert old in SOURCE
    return changed("pkg/calc.py", SOURCE, SOURCE.replace(old, new))


def test_a_body_change_selects_the_tests_that_ran_it() -> None:
    selection = select_tests(recorded_map(), edit(b"return a + b", b"return a - b"))
    assert not selection.full
    assert selection.selectors == ("tests/test_calc.py::test_add",)
    assert selection.reached == {"pkg/calc.py::add": ("tests/test_calc.py::test_add",)}
    assert selection.suite_size == 6


def test_parametrised_tests_run_by_function() -> None:
    selection = select_tests(recorded_map(), edit(b"return x * RATE", b"return x * RATE + 0"))
    assert selection.selectors == ("tests/test_calc.py::test_scale",)


def test_code_run_by_a_shared_fixture_selects_every_test_using_it() -> None:
    selection = select_tests(recorded_map(), edit(b"round(v, 2)", b"round(v, 3)"))
    assert selection.selectors == (
        "tests/test_bank.py::test_balance",
        "tests/test_bank.py::test_charge",
    )


def test_a_new_nested_function_belongs_to_its_existing_parent() -> None:
    new = b"        def rounded(v):\n            return round(v, 2)\n\n        def twice(v):\n"
    new += b"            return 2 * v\n"
    selection = select_tests(
        recorded_map(), edit(b"        def rounded(v):\n            return round(v, 2)\n", new)
    )
    assert not selection.full
    assert "pkg/calc.py::Account.charge" in selection.reached


def test_import_time_changes_run_the_whole_suite() -> None:
    for old, new in [
        (b"RATE = 2", b"RATE = 3"),  # a module constant
        (b"    fee = 1", b"    fee = 2"),  # a class attribute
        (b"@decorated", b"@other"),  # a decorator
        (b'"""pkg.calc"""', b'"""pkg.calc"""\nimport os'),  # an import
        (b"def add(a, b):\n    return a + b\n", b""),  # a function removed
    ]:
        selection = select_tests(recorded_map(), edit(old, new))
        assert selection.full, old
        assert "import time" in selection.reasons[0], selection.reasons


def test_a_method_added_to_a_class_runs_the_whole_suite() -> None:
    new = b"    def __eq__(self, other):\n        return True\n\n    def charge(self, amount):"
    selection = select_tests(recorded_map(), edit(b"    def charge(self, amount):", new))
    assert selection.full


def test_code_that_runs_outside_any_test_runs_the_whole_suite() -> None:
    selection = select_tests(recorded_map(), edit(b"    return 1\n", b"    return 2\n"))
    assert selection.full and "outside any test" in selection.reasons[0]


def test_comment_and_blank_line_changes_reach_no_test() -> None:
    selection = select_tests(recorded_map(), edit(b"RATE = 2\n", b"RATE = 2\n# tuned later\n\n"))
    assert selection.full and selection.reasons == ("no recorded test reaches the changed code",)


def test_a_changed_test_file_runs_whole_and_a_new_one_too() -> None:
    change = DiffedChange(
        files=(
            FileChange(
                path="tests/test_calc.py", content=TESTS + b"\n\ndef test_more():\n    pass\n"
            ),
            FileChange(path="tests/test_new.py", content=b"def test_new():\n    pass\n"),
        ),
        base={"tests/test_calc.py": TESTS, "tests/test_new.py": None},
    )
    selection = select_tests(recorded_map(), change)
    assert selection.selectors == ("tests/test_calc.py", "tests/test_new.py")


def test_whole_suite_fallbacks_name_their_reason() -> None:
    cases = {
        "no test map": (None, edit(b"a + b", b"a - b")),
        "conftest": (recorded_map(), changed("tests/conftest.py", b"", b"X = 1\n")),
        "configuration": (recorded_map(), changed("pyproject.toml", b"", b"[x]\n")),
        "not Python": (recorded_map(), changed("pkg/data.json", b"{}", b"[]")),
        "was added": (recorded_map(), changed("pkg/new.py", None, b"X = 1\n")),
        "was deleted": (recorded_map(), changed("pkg/calc.py", SOURCE, None)),
        "stale": (recorded_map(), changed("pkg/calc.py", SOURCE + b"\n", SOURCE)),
        "never ran inside": (recorded_map(), changed("tools/run.py", b"X = 1\n", b"X = 2\n")),
        "cannot be parsed": (recorded_map(), changed("pkg/calc.py", SOURCE, SOURCE + b"def (:\n")),
        "unknown": (
            recorded_map(),
            DiffedChange(files=(FileChange(path="pkg/calc.py", content=b""),)),
        ),
    }
    for expected, (tests, change) in cases.items():
        selection = select_tests(tests, change)
        assert selection.full, expected
        assert expected in selection.reasons[0], (expected, selection.reasons)


def test_documentation_changes_alone_fall_back_to_the_whole_suite() -> None:
    selection = select_tests(recorded_map(), changed("README.md", b"a", b"b"))
    assert selection.full  # nothing to select is not a pass: the suite runs


def test_regions_attribute_lines_like_the_recorder() -> None:
    regions = function_regions(SOURCE)
    lines = SOURCE.splitlines()
    owner = {n: body_owner(regions, n) for n in range(1, len(lines) + 1)}
    assert owner[lines.index(b"    return a + b") + 1] == "add"
    assert owner[lines.index(b"def add(a, b):") + 1] is None  # the def line runs at import
    assert owner[lines.index(b"    fee = 1") + 1] is None
    assert owner[lines.index(b"            return round(v, 2)") + 1] == (
        "Account.charge.<locals>.rounded"
    )


@given(
    base=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=12),
    new=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=12),
)
def test_hunks_cover_every_difference(base: list[str], new: list[str]) -> None:
    old_text = "".join(f"{x}\n" for x in base).encode()
    new_text = "".join(f"{x}\n" for x in new).encode()
    rebuilt: list[str] = []
    cursor = 1
    for hunk in hunks(old_text, new_text):
        rebuilt += (
            base[cursor - 1 : hunk.base_start - 1] + new[hunk.new_start - 1 : hunk.new_end - 1]
        )
        cursor = hunk.base_end
    rebuilt += base[cursor - 1 :]
    assert rebuilt == new
    added = added_lines(changed("f", old_text, new_text), "f") or set()
    assert all(1 <= n <= len(new) for n in added)
