"""JSON log lines of `serve` and `worker`: every record carries the run it belongs to."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.observability.logs import configure_logging, log_formatter, run_logging
from codefactory.observability.settings import ObservabilitySettings


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The root logger writing to a buffer as `serve` configures it; restored afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    yield buffer
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_json_with_the_run_id_of_its_block(
    tmp_path: Path, stream: io.StringIO
) -> None:
    configure_logging(Settings(data_dir=tmp_path), stream=stream)
    log = logging.getLogger("codefactory.dispatch.test")
    log.info("before any run")
    with run_logging("r-20261130-000000-aaaaaa"):
        log.info("provisioned %s", "workspace", extra={"step": "provision"})
        with run_logging("r-20261130-000000-bbbbbb"):
            logging.getLogger("a.library").warning("inside the nested run")
        log.error("back in the first run")
    log.info("after the run")
    written = lines(stream)
    assert [(w["message"], w["run_id"]) for w in written] == [
        ("before any run", ""),
        ("provisioned workspace", "r-20261130-000000-aaaaaa"),
        ("inside the nested run", "r-20261130-000000-bbbbbb"),
        ("back in the first run", "r-20261130-000000-aaaaaa"),
        ("after the run", ""),
    ]
    first_run = written[1]
    assert first_run["level"] == "INFO" and first_run["logger"] == "codefactory.dispatch.test"
    assert first_run["step"] == "provision"
    assert str(first_run["time"]).endswith("Z") and str(first_run["time"])[10] == "T"


def test_a_run_id_does_not_leak_into_another_thread(tmp_path: Path, stream: io.StringIO) -> None:
    configure_logging(Settings(data_dir=tmp_path), stream=stream)
    log = logging.getLogger("codefactory.dispatch.test")
    barrier = threading.Barrier(2)

    def worker(run_id: str) -> None:
        with run_logging(run_id):
            barrier.wait(5)  # both blocks are open at once
            log.info("working")

    threads = [threading.Thread(target=worker, args=(f"r-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(str(w["run_id"]) for w in lines(stream)) == ["r-1", "r-2"]


def test_an_exception_is_written_in_the_same_line(tmp_path: Path, stream: io.StringIO) -> None:
    configure_logging(Settings(data_dir=tmp_path), stream=stream)
    with run_logging("r-x"):
        try:
            raise RuntimeError("sandbox gone")
        except RuntimeError:
            logging.getLogger("codefactory").exception("step failed")
    (written,) = lines(stream)
    assert written["run_id"] == "r-x" and "RuntimeError: sandbox gone" in str(written["exc_info"])


def test_text_format_and_level_from_settings_and_configuring_twice(
    tmp_path: Path, stream: io.StringIO
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        observability=ObservabilitySettings(log_format="text", log_level="WARNING"),
    )
    configure_logging(settings, stream=io.StringIO())
    configure_logging(settings, stream=stream)  # replaces the first handler
    with run_logging("r-y"):
        logging.getLogger("codefactory").info("not at this level")
        logging.getLogger("codefactory").warning("disk nearly full")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" WARNING codefactory [r-y] disk nearly full")


def test_the_format_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEFACTORY_OBSERVABILITY__LOG_FORMAT", "text")
    assert Settings().observability.log_format == "text"
    monkeypatch.setenv("CODEFACTORY_OBSERVABILITY__LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()
    with pytest.raises(ValueError, match="neither 'json' nor 'text'"):
        log_formatter("xml")
