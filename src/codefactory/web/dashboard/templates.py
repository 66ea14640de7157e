"""The dashboard's Jinja2 environment: templates shipped in this package, autoescaped."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from codefactory.web.dashboard.package_files import Missing


@cache
def environment() -> Environment:
    """One environment for the process: `templates/*.html.j2` from this package, every
    value HTML-escaped (`autoescape`), an undefined name an error rather than empty text."""
    env = Environment(
        loader=PackageLoader("codefactory.web.dashboard", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.tests["missing"] = lambda value: isinstance(value, Missing)
    return env


def render(template: str, **context: Any) -> str:
    """`template` (a file name under `templates/`) rendered with `context`; raises
    `jinja2.TemplateError` for a template that does not compile or names a missing value."""
    return environment().get_template(template).render(**context)
