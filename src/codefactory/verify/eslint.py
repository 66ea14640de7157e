"""ESLint check: the repository's own ESLint over the changed JavaScript/TypeScript files.

It runs only when the repository commits an ESLint configuration, with the ESLint its lock
file installed (`node_modules/.bin/eslint`), read-only: never `--fix`, JSON output turned into
SARIF findings. Ignore patterns cannot hide a changed file: the files are named explicitly
with `--no-ignore`, and a changed file the configuration still does not lint ("File ignored
because no matching configuration was supplied") is a finding. Inline configuration cannot
hide a finding either: `--no-inline-config` makes ESLint ignore `eslint-disable*` and
`/* eslint rule: off */` comments (and `/* global */`), so only the committed configuration
judges (adding such a comment is also an integrity finding, `judges.JS_SUPPRESSIONS`). ESLint
configured but not installed, or unable to run, is a failed check with the reason.

Only what the change introduced blocks: each changed file's base version (from the gate's
diff) is linted too, through `--stdin --stdin-filename` in the same installed workspace (a
base workspace has no `node_modules`), and a finding whose fingerprint was already there
(rule, file, line text) is reported but does not block.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

from codefactory.domain import Change, CheckResult, ExecResult, Finding, Severity
from codefactory.projects.javascript import ESLINT_LEGACY_CONFIGS
from codefactory.projects.model import Ecosystem, Project
from codefactory.sandbox.layout import SH
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.custom import tail
from codefactory.verify.diff import base_of
from codefactory.verify.findings import digest, fingerprinted, line_fingerprint
from codefactory.verify.js_tests import CHECK_ENV
from codefactory.verify.lint import changed_path
from codefactory.verify.port import Baseline, Cost
from codefactory.verify.sarif import could_not_run, scan_result
from codefactory.verify.workspace_project import ProjectDetector, detect_workspace

JS_SUFFIXES = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts")
ESLINT_BIN = "node_modules/.bin/eslint"
ESLINT_PACKAGE = "node_modules/eslint/package.json"
OPTIONS = ("--no-ignore", "--no-inline-config", "--format", "json")
"""`--no-inline-config`: ESLint 9 (flat config, and `ESLINT_USE_FLAT_CONFIG=false`) and 8
ignore every configuration comment, as `linterOptions.noInlineConfig` would."""
NOT_INSTALLED = 127
MAX_BASE_FILES = 20
"""Past this many modified files the base versions are not linted one by one: every finding
is then new (and the summary says why)."""
_RUN = f'[ -e {ESLINT_BIN} ] || exit {NOT_INSTALLED}; exec {ESLINT_BIN} "$@"'


class EslintCheck:
    """Lints the changed JavaScript/TypeScript files with the repository's ESLint."""

    name: str = "eslint"
    port = "lint"
    ecosystems = frozenset({Ecosystem.JAVASCRIPT})
    baseline = Baseline.NONE
    cost = Cost.CHEAP

    def __init__(
        self, *, timeout_s: float = 120.0, detect: ProjectDetector = detect_workspace
    ) -> None:
        self.timeout_s = timeout_s
        self.detect = detect

    def for_project(self, project: Project) -> EslintCheck:
        """This check bound to the project the gate detected (no detection of its own)."""
        return EslintCheck(timeout_s=self.timeout_s, detect=lambda _: project)

    def config_digest(self) -> str:
        return digest("eslint", "2", *OPTIONS)

    def run(self, workspace: Workspace, change: Change) -> CheckResult:
        """Lint the added and modified JavaScript/TypeScript files (deleted ones are gone)."""
        javascript = self.detect(workspace).javascript
        config = javascript.eslint_config if javascript is not None else None
        if config is None:
            return self._result([], "", summary="ESLint is not configured: nothing to run")
        paths = [f.path for f in change.files if f.content is not None and _is_js(f.path)]
        if not paths:
            return self._result([], "", summary="no JavaScript/TypeScript files changed")
        env = CHECK_ENV | ({"ESLINT_USE_FLAT_CONFIG": "false"} if _legacy(config) else {})
        version = _version(workspace)
        result = self._eslint(workspace, ["--", *paths], env)
        try:
            findings = fingerprinted(parse_eslint_json(result, paths, config), change)
            base, note = self._base(workspace, change, paths, env, config)
        except ValueError as exc:
            return self._could_not_run(str(exc), version)
        findings = _mark_pre_existing(findings, base)
        blocking = sum(1 for f in findings if f.blocking)
        summary = (
            f"{len(findings)} ESLint finding(s) in {len(paths)} changed file(s) ({config}), "
            f"{blocking} new"
        )
        return self._result(findings, version, summary=summary + (f" [{note}]" if note else ""))

    def _eslint(
        self, workspace: Workspace, args: list[str], env: dict[str, str], stdin: bytes | None = None
    ) -> ExecResult:
        command = [SH, "-c", _RUN, "sh", *OPTIONS, *args]
        return workspace.exec(
            command, phase=Phase.CHECK, timeout_s=self.timeout_s, env=env, stdin=stdin
        )

    def _base(
        self,
        workspace: Workspace,
        change: Change,
        paths: list[str],
        env: dict[str, str],
        config: str,
    ) -> tuple[list[Finding] | None, str]:
        """The base versions' findings, fingerprinted on their own lines; None with a note when
        the base versions are unknown or too many."""
        known = {p: base_of(change, p) for p in paths}
        if not all(k for k, _ in known.values()):
            return None, "base versions unknown: every finding counts as new"
        modified = {p: content for p, (_, content) in known.items() if content is not None}
        if len(modified) > MAX_BASE_FILES:
            return None, f"more than {MAX_BASE_FILES} modified files: every finding counts as new"
        found: list[Finding] = []
        for path, content in modified.items():
            result = self._eslint(workspace, ["--stdin", "--stdin-filename", path], env, content)
            for finding in parse_eslint_json(result, [path], config):
                fingerprint = line_fingerprint(
                    finding.check, finding.rule, path, content, finding.line
                )
                if not finding.line:
                    fingerprint = digest(finding.check, finding.rule, path, finding.message)
                found.append(replace(finding, fingerprint=fingerprint))
        return found, ""

    def _result(self, findings: list[Finding], version: str, *, summary: str) -> CheckResult:
        return scan_result(self.name, "eslint", version, findings, summary=summary)

    def _could_not_run(self, reason: str, version: str) -> CheckResult:
        return could_not_run(self.name, "eslint", version, reason, shown="ESLint")


def parse_eslint_json(result: ExecResult, paths: list[str], config: str) -> list[Finding]:
    """Findings from ESLint's JSON formatter; ValueError when ESLint is missing, failed (exit
    2: a configuration or crash) or its output is not that JSON."""
    if result.timed_out:
        raise ValueError("ESLint did not finish in time")
    if result.exit_code == NOT_INSTALLED:
        raise ValueError(
            f"ESLint is configured ({config}) but not installed: {ESLINT_BIN} is missing "
            "(is eslint in package.json's devDependencies and the lock file?)"
        )
    if result.exit_code not in (0, 1):
        raise ValueError(f"ESLint exited {result.exit_code}: {tail(result, 1500)}")
    try:
        files = json.loads(result.stdout)
        return [_finding(message, file, paths) for file in files for message in file["messages"]]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"ESLint's output is not the JSON expected ({exc!r})") from exc


def _finding(message: dict[str, Any], file: dict[str, Any], paths: list[str]) -> Finding:
    text = str(message["message"])
    rule = message.get("ruleId")
    if rule is None and text.startswith("File ignored"):
        # a changed file ESLint does not lint: the configuration leaves it unjudged
        rule, text = "eslint-file-ignored", f"ESLint does not lint this changed file: {text}"
    elif rule is None:
        rule = "invalid-syntax" if message.get("fatal") else "eslint-error"
    warning = message.get("severity") == 1 and rule != "eslint-file-ignored"
    return Finding(
        check="eslint",
        rule=str(rule),
        message=text,
        severity=Severity.LOW if warning else Severity.MEDIUM,
        path=changed_path(str(file["filePath"]), paths),
        line=int(message.get("line") or 0),
        blocking=not warning,
    )


def _mark_pre_existing(findings: list[Finding], base: list[Finding] | None) -> list[Finding]:
    """Findings whose fingerprint the base versions already had no longer block (a multiset:
    a second copy of an existing finding is new)."""
    if base is None:
        return findings
    left = Counter(f.fingerprint for f in base)
    marked = []
    for finding in findings:
        if left[finding.fingerprint] > 0:
            left[finding.fingerprint] -= 1
            finding = replace(
                finding, blocking=False, message=f"{finding.message} (already at the base commit)"
            )
        marked.append(finding)
    return marked


def _is_js(path: str) -> bool:
    return path.endswith(JS_SUFFIXES) and not path.startswith("node_modules/")


def _legacy(config: str) -> bool:
    return config in ESLINT_LEGACY_CONFIGS or config.endswith("#eslintConfig")


def _version(workspace: Workspace) -> str:
    raw = workspace.read_file(ESLINT_PACKAGE, phase=Phase.CHECK)
    try:
        return str(json.loads(raw or b"")["version"])
    except (ValueError, KeyError, TypeError):
        return "unknown"
