"""The forge request's body shows a hostile package's words without rendering them: no
image the forge's proxy would fetch, no link, no `@mention`, no heading of its own, no host
path of the factory. The body is rendered with a real CommonMark renderer (markdown-it-py,
with GFM tables) and the HTML is inspected."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from codefactory.domain import ChangeKind, Run, RunState
from codefactory.review.forges.publishing import MAX_BODY_CHARS, code, escaped, request_body

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
COMMIT = "a" * 40
HOSTILE = (
    "![pixel](https://evil.example/track.png) [click](https://evil.example/) "
    "<img src=https://evil.example/x.png> @acme/security-team @priya "
    "https://evil.example/bare <script>alert(1)</script> | cell | **bold**"
)
OUR_HEADINGS = ["Provenance", "Risk", "Rollback plan", "Evidence (files in the package)", "Summary"]


def run(run_id: str = "r-1", sponsor: str = "priya") -> Run:
    return Run(
        id=run_id, trigger_id="t-1", kind=ChangeKind.BUMP_DEPENDENCY, repository="acme/pay",
        sponsor=sponsor, agent_id="agent:bump", state=RunState.PACKAGED, reason="",
        base_commit="b" * 40, head_commit=COMMIT, branch=f"factory/{run_id}", package_dir="",
        created_at=NOW,
    )  # fmt: skip


@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "var" / "lib" / "codefactory" / "packages" / "r-1"
    (folder / "evidence").mkdir(parents=True)
    (folder / "risk.json").write_text(
        json.dumps(
            {
                "level": "low](https://evil.example/)",
                "score": "<img src=x>",
                "factors": [
                    f"touches `src/{HOSTILE}`",
                    "# A fake heading\n## another",
                    "check summary: ``` fence ``` and ` one",
                ],
            }
        )
    )
    (folder / "rollback.md").write_text(
        "# Rollback\n\n```\n```\n# Fake heading outside the fence\n"
        f"![x](https://evil.example/r.png) @acme/ops\n\n"
        f"git -C /srv/factory/repos/acme-pay.git revert {COMMIT}\n"
    )
    (folder / "summary.md").write_text(
        f"# Change package\n\n````\n{HOSTILE}\n\n"
        f"See file://{folder}/change.patch and {folder}/cab.json\n"
    )
    (folder / "evidence" / "![e](https:x)`.sarif").write_text("{}")
    (folder / "change.patch").write_text("")
    return folder


def rendered(body: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(body)


def text_outside_code(html: str) -> str:
    return re.sub(r"<code[^>]*>.*?</code>", "", html, flags=re.S)


def test_a_hostile_package_renders_no_image_link_mention_heading_or_html(package: Path) -> None:
    body = request_body(run(), package, host_paths=("/srv/factory/repos/acme-pay.git",))
    html = rendered(body)
    assert "<img" not in html and "<a " not in html and "<script" not in html
    headings = re.findall(r"<h(\d)>(.*?)</h\1>", html)
    assert [text for _, text in headings] == OUR_HEADINGS
    outside = text_outside_code(html)
    assert "@acme" not in outside and "@priya" not in outside
    # the hostile words are all still there to read, as code
    assert "![pixel](https://evil.example/track.png)" in html
    assert "# Fake heading outside the fence" in html
    assert "<strong>low](https://evil.example/)</strong>" in html  # escaped, not a link


def test_the_factorys_host_paths_are_not_shown(package: Path) -> None:
    body = request_body(run(), package, host_paths=("/srv/factory/repos/acme-pay.git",))
    assert str(package) not in body and "/srv/factory" not in body
    assert "file://" not in body and "/var/lib" not in body
    assert "<factory>/change.patch" in body and "<factory>/cab.json" in body
    digest = hashlib.sha256(b"{}").hexdigest()
    assert f"- ``evidence/![e](https:x)`.sarif`` sha256 `{digest}`" in body  # relative, as code
    assert f"`{COMMIT}`" in body and "`r-1`" in body


def test_the_summary_is_cut_inside_its_fence_and_the_cut_said(package: Path) -> None:
    (package / "summary.md").write_text("x" * (MAX_BODY_CHARS * 2))
    body = request_body(run(), package)
    assert len(body) <= MAX_BODY_CHARS
    assert body.rstrip().endswith("(cut here: read `summary.md` in the package)")
    assert "<pre><code" in rendered(body)


def test_an_empty_package_says_so(tmp_path: Path) -> None:
    body = request_body(run(), tmp_path)
    assert "- none" in body and body.count("(none in the package)") == 2


@pytest.mark.parametrize(
    "text",
    ["plain", "a ` b", "``", "`edge`", "x | y", "line\nbreak", "@team ![i](u) [l](u) # h"],
)
def test_code_and_escaped_render_their_text_and_nothing_else(text: str) -> None:
    flat = " ".join(text.split())
    in_code = rendered(f"- {code(text)}\n")
    assert "<img" not in in_code and "<a " not in in_code
    shown = re.search(r"<code>(.*)</code>", in_code, flags=re.S)
    assert shown is not None
    assert unescape(shown.group(1)) == flat
    in_cell = rendered(f"| a | b |\n| --- | --- |\n| {code(text, cell=True)} | z |\n")
    cell = re.search(r"<td><code>(.*)</code></td>", in_cell, flags=re.S)
    assert cell is not None and unescape(cell.group(1)) == flat
    as_text = rendered(escaped(text))
    assert "<img" not in as_text and "<a " not in as_text and "<h" not in as_text
    assert (
        unescape(as_text).removeprefix("<p>").removesuffix("</p>\n").replace("\u200d", "") == flat
    )


def test_risk_reasons_are_clipped_in_number_and_length(package: Path) -> None:
    (package / "risk.json").write_text(
        json.dumps({"level": "high", "score": 9, "factors": ["y" * 5000] * 500})
    )
    body = request_body(run(), package)
    listed = [line for line in body.splitlines() if line.startswith("- `y")]
    assert len(listed) == 50 and all(len(line) < 320 and "…" in line for line in listed)
