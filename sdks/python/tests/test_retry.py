"""The retry rules on answers a running gateway does not give on demand (503 with and without
Retry-After, an HTTP-date Retry-After), served by a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import time

import pytest

from connectors_gateway import Connectors, UnavailableError


class Scripted:
    """Serves the scripted answers in order, then 200 ``{"id": "t"}``; counts requests."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers = answers
        self.served = 0
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                index = script.served
                script.served += 1
                if index < len(script.answers):
                    status, headers = script.answers[index]
                    body = {"error": "busy", "code": "unavailable", "requestId": f"r{index + 1}"}
                else:
                    status, headers, body = 200, {}, {"id": "t"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def scripted() -> Iterator[type[Scripted]]:
    servers: list[Scripted] = []

    def start(answers: list[tuple[int, dict[str, str]]]) -> Scripted:
        server = Scripted(answers)
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        server.server.shutdown()


def test_503_is_retried_with_seconds_an_http_date_or_no_retry_after(scripted) -> None:
    stub = scripted([(503, {"retry-after": "0"}), (503, {"retry-after": formatdate(time() - 1, usegmt=True)}), (503, {})])
    with Connectors(base_url=stub.url, api_key="k", max_retries=3) as client:
        assert client.tenant.get()["id"] == "t"
    assert stub.served == 4


def test_retries_are_bounded_and_max_retries_0_turns_them_off(scripted) -> None:
    stub = scripted([(503, {"retry-after": "0"})] * 10)
    with Connectors(base_url=stub.url, api_key="k", max_retries=2) as bounded, pytest.raises(UnavailableError) as caught:
        bounded.tenant.get()
    assert caught.value.retry_after == 0 and caught.value.request_id == "r3"
    assert stub.served == 3
    with Connectors(base_url=stub.url, api_key="k", max_retries=0) as off, pytest.raises(UnavailableError):
        off.tenant.get()
    assert stub.served == 4
