"""Log lines of `serve` and `worker`: JSON (or text) on stderr, each carrying the run it
belongs to.

The run id lives in a `contextvars.ContextVar`: `run_logging(run_id)` sets it around one run
and a filter on the handler copies it into every record as `run_id` ("" outside a run), so
lines written by any module, the factory's or a library's, say which run they belong to. A
thread started inside a run does not inherit it (threads start with an empty context); the
executor wraps the code each worker thread runs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, TextIO

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from codefactory.config import Settings

_RUN_ID: ContextVar[str] = ContextVar("codefactory_run_id", default="")

JSON_FIELDS = ("asctime", "levelname", "name", "message", "run_id")
"""Fields of every JSON line, renamed to `time`, `level`, `logger`, `message`, `run_id`; a
record's `extra=` fields and its traceback (`exc_info`) join them."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(run_id)s] %(message)s"


def current_run_id() -> str:
    """The run the calling code works for, "" outside `run_logging`."""
    return _RUN_ID.get()


@contextmanager
def run_logging(run_id: str) -> Iterator[None]:
    """Every record logged inside the block (in this thread or task) carries `run_id`; the
    previous value comes back on exit, so blocks nest."""
    token = _RUN_ID.set(run_id)
    try:
        yield
    finally:
        _RUN_ID.reset(token)


class RunIdFilter(logging.Filter):
    """Adds `run_id` (the current run, or "") to each record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "run_id", ""):
            record.run_id = _RUN_ID.get()
        return True


def log_formatter(log_format: str) -> logging.Formatter:
    """The formatter of `log_format` (`json` or `text`), times in UTC ISO 8601 (RFC 3339)."""
    if log_format == "json":
        formatter: logging.Formatter = JsonFormatter(
            list(JSON_FIELDS),
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    elif log_format == "text":
        formatter = logging.Formatter(TEXT_FORMAT)
    else:
        raise ValueError(f"log format {log_format!r} is neither 'json' nor 'text'")
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03dZ"
    formatter.converter = time.gmtime
    return formatter


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) in `observability.log_format`, at
    `observability.log_level`, each with its `run_id`. Called once by `serve` and `worker`;
    calling it again replaces the handler it installed rather than adding a second one."""
    options = settings.observability
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RunIdFilter())
    handler.setFormatter(log_formatter(options.log_format))
    root = logging.getLogger()
    for installed in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(installed)
    root.addHandler(handler)
    root.setLevel(options.log_level)
    return handler


_HANDLER_NAME = "codefactory-observability"
