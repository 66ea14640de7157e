"""JUnit XML: read a test run's report, and write one for a run that produced none.

The report comes from code under test, so it is untrusted. `defusedxml` is not installed;
the standard library parser is used: it never fetches external entities, and the expat it
bundles (2.4.1 and later) refuses entity-expansion ("billion laughs") attacks. The sandbox
caps the report's size.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - see the module docstring
from dataclasses import dataclass

from codefactory.verify.errors import JunitUnparseable

ROOTS = ("testsuites", "testsuite")
COLLECTION_FAILURE = "collection failure"
"""pytest's message for a module it could not import while collecting."""
# Characters XML 1.0 cannot carry (§2.2): terminal escapes and NULs in test output would
# otherwise make a synthesised report unreadable.
NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, kw_only=True)
class JunitCase:
    """One failed or errored test case: where it lives and why it failed."""

    name: str
    classname: str
    path: str
    line: int
    kind: str  # "failure" or "error"
    message: str
    detail: str = ""
    """The line that says why (pytest's last `E   ` line: `ModuleNotFoundError: ...`)."""

    @property
    def collection_error(self) -> bool:
        """Whether pytest could not collect this module (an import or syntax error)."""
        return self.kind == "error" and self.message == COLLECTION_FAILURE

    @property
    def module(self) -> str:
        """The module's path for a collection error (pytest names the case after it)."""
        if self.path:
            return self.path
        return self.name.replace(".", "/") + ".py" if self.name else ""

    @property
    def nodeid(self) -> str:
        """A pytest-style id (`path::Class::test`) that names the test for a reviewer."""
        module = self.path.removesuffix(".py").replace("/", ".")
        if self.path and (self.classname == module or self.classname.startswith(module + ".")):
            classes = [part for part in self.classname[len(module) :].split(".") if part]
            return "::".join([self.path, *classes, self.name])
        return "::".join(part for part in (self.classname, self.name) if part)


@dataclass(frozen=True, kw_only=True)
class JunitReport:
    """The counts of a test run and the cases that did not pass."""

    tests: int
    failures: int
    errors: int
    skipped: int
    failed: tuple[JunitCase, ...] = ()

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


def parse_junit(text: str | bytes) -> JunitReport:
    """Summarise a JUnit XML report whose root is `<testsuites>` or a bare `<testsuite>`."""
    try:
        root = ET.fromstring(text)  # noqa: S314 - see the module docstring
    except ET.ParseError as exc:
        raise JunitUnparseable(f"malformed XML ({exc})") from exc
    if root.tag not in ROOTS:
        raise JunitUnparseable(f"root element is <{root.tag}>, not <testsuites> or <testsuite>")
    counts = {"failure": 0, "error": 0, "skipped": 0}
    failed: list[JunitCase] = []
    cases = list(root.iter("testcase"))
    for case in cases:
        outcome = next((child for child in case if child.tag in counts), None)
        if outcome is None:
            continue
        counts[outcome.tag] += 1
        if outcome.tag != "skipped":
            failed.append(_case(case, outcome))
    return JunitReport(
        tests=len(cases),
        failures=counts["failure"],
        errors=counts["error"],
        skipped=counts["skipped"],
        failed=tuple(failed),
    )


def synthesise_junit(*, suite: str, name: str, message: str, details: str = "") -> str:
    """A valid JUnit XML report of one errored case, for a run that wrote no report."""
    suite, name, message, details = (
        NOT_XML_CHAR.sub("?", text) for text in (suite, name, message, details)
    )
    suites = ET.Element("testsuites", name=suite)
    counts = {"name": suite, "tests": "1", "failures": "0", "errors": "1", "skipped": "0"}
    testsuite = ET.SubElement(suites, "testsuite", counts)
    testcase = ET.SubElement(testsuite, "testcase", classname=suite, name=name)
    error = ET.SubElement(testcase, "error", message=message)
    error.text = details or message
    body = ET.tostring(suites, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n'


def _case(case: ET.Element, outcome: ET.Element) -> JunitCase:
    classname = case.get("classname", "")
    return JunitCase(
        name=case.get("name", ""),
        classname=classname,
        path=case.get("file") or _path_from_classname(classname),
        line=_line(case.get("line")),
        kind=outcome.tag,
        message=_first_line(outcome.get("message") or outcome.text or outcome.tag),
        detail=error_line(outcome.text or ""),
    )


def error_line(text: str) -> str:
    """The line of pytest output that names the error: the last `E   ` line (pytest's
    marker for the exception), else the last line naming an `...Error` or `...Exception`."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    marked = [line[1:].strip() for line in lines if line.startswith("E ")]
    if marked:
        return marked[-1][:300]
    named = [line.strip() for line in lines if re.search(r"\w+(Error|Exception)\b", line)]
    return named[-1][:300] if named else ""


def _path_from_classname(classname: str) -> str:
    """`tests.test_a.TestX` → `tests/test_a.py`: module parts stop at the first class name."""
    parts = []
    for part in classname.split("."):
        if not part or part[0].isupper():
            break
        parts.append(part)
    return "/".join(parts) + ".py" if parts else ""


def _line(value: str | None) -> int:
    # pytest writes the 0-based line of the test's definition (xunit1 `line` attribute)
    return int(value) + 1 if value is not None and value.isdigit() else 0


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def with_properties(xml: str, properties: dict[str, str]) -> str:
    """The report with `<properties>` added to its first `<testsuite>` (JUnit's place for them).

    A report that cannot be parsed is returned as it is: the parser will say why.
    """
    try:
        root = ET.fromstring(xml)  # noqa: S314 - see the module docstring
    except ET.ParseError:
        return xml
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return xml
    holder = ET.Element("properties")
    for name, value in properties.items():
        ET.SubElement(holder, "property", name=name, value=NOT_XML_CHAR.sub("?", value))
    suite.insert(0, holder)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n'


def synthesise_passed(*, suite: str, name: str, details: str = "") -> str:
    """A valid JUnit XML report of one passed case, for a command that writes no report."""
    suites = ET.Element("testsuites", name=suite)
    counts = {"name": suite, "tests": "1", "failures": "0", "errors": "0", "skipped": "0"}
    testsuite = ET.SubElement(suites, "testsuite", counts)
    testcase = ET.SubElement(testsuite, "testcase", classname=suite, name=name)
    if details:
        ET.SubElement(testcase, "system-out").text = NOT_XML_CHAR.sub("?", details)
    body = ET.tostring(suites, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n'


def synthesise_skipped(*, suite: str, name: str, reason: str) -> str:
    """A valid JUnit XML report of one skipped case: the suite was not run, and why."""
    suites = ET.Element("testsuites", name=suite)
    counts = {"name": suite, "tests": "1", "failures": "0", "errors": "0", "skipped": "1"}
    testsuite = ET.SubElement(suites, "testsuite", counts)
    testcase = ET.SubElement(testsuite, "testcase", classname=suite, name=name)
    ET.SubElement(testcase, "skipped", message=NOT_XML_CHAR.sub("?", reason))
    body = ET.tostring(suites, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{body}\n'
