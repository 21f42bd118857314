"""An LMS secret that a library quotes in a log line shows masked, whoever logs it."""

from __future__ import annotations

import logging

import pytest

from lms.base import ConnectionConfig, Credentials
from lms.canvas import CanvasClient
from models.errors import LMSUnavailable
from tests.lms.fakes import Dataset, FakeCanvas
from workers.logs import JsonFormatter, TextFormatter


def test_a_token_refused_by_httpcore_is_masked_in_its_debug_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A token pasted in two lines: httpcore logs "send_request_headers.failed
    # exception=LocalProtocolError(...Illegal header value b'Bearer <token>\\n<token>'...)"
    halves = ("7~first-half-of-a-pasted-token", "second-half-of-a-pasted-token")
    with FakeCanvas(Dataset.generate(1, 1, 1)) as canvas:
        config = ConnectionConfig(
            "canvas", canvas.base_url, Credentials(api_key="\n".join(halves)), max_retries=0
        )
        client = CanvasClient(config, sleep=lambda _: None)
        with caplog.at_level(logging.DEBUG, logger="httpcore"), pytest.raises(LMSUnavailable):
            list(client.list_courses())
        client.close()
    failed = [r for r in caplog.records if "send_request_headers.failed" in r.getMessage()]
    assert failed and halves[0] in failed[0].getMessage(), "httpcore quotes the header"
    for formatter in (JsonFormatter(), TextFormatter("%(message)s")):
        for record in caplog.records:
            line = formatter.format(record)
            assert halves[0] not in line and halves[1] not in line
    assert "Illegal header value b'Bearer ***'" in TextFormatter("%(message)s").format(failed[0])
