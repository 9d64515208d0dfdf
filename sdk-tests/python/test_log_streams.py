"""Log streams through auth0-python v6: log_streams.create / list / get / update / delete, and
the event of a refused token request reaching a local HTTP receiver through a filtered stream.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from auth0.management import (
    BadRequestError,
    CreateLogStreamHttpRequestBody,
    LogStreamFilter,
    LogStreamHttpSink,
    NotFoundError,
)

from conftest import uniq


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str | None, bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        _Receiver.received.append((self.headers.get("Authorization"), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/in", _Receiver.received
    server.shutdown()
    server.server_close()


def test_log_streams_lifecycle_and_delivery(mgmt, env, receiver):
    url, received = receiver
    name = uniq("stream-py")
    stream = mgmt.log_streams.create(
        request=CreateLogStreamHttpRequestBody(
            name=name,
            type="http",
            sink=LogStreamHttpSink(
                http_endpoint=url,
                http_content_type="application/json",
                http_content_format="JSONLINES",
                http_authorization="Bearer py-stream-token",
            ),
            filters=[LogStreamFilter(type="category", name="auth.token_exchange.fail")],
        )
    )
    try:
        assert stream.id.startswith("lst_") and len(stream.id) == 20
        assert stream.status == "active"
        assert stream.sink.http_authorization == "Bearer py-stream-token"
        assert stream.sink.http_content_format == "JSONLINES"
        assert any(s.id == stream.id for s in mgmt.log_streams.list())
        got = mgmt.log_streams.get(stream.id)
        assert (got.id, got.name, got.status) == (stream.id, name, "active")

        # A refused token request: a feccft, which the filter lets through.
        client = uniq("nobody")
        r = requests.post(
            f"{env.issuer}oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client,
                "client_secret": "wrong-secret-0123456789",
                "audience": env.mgmt_audience,
            },
            timeout=10,
        )
        assert r.status_code == 401
        deadline = time.monotonic() + 20
        mine: list[dict] = []
        while time.monotonic() < deadline:
            events = [json.loads(line) for _, body in list(received) for line in body.decode().splitlines() if line]
            mine = [e for e in events if e["data"].get("client_id") == client]
            if mine:
                break
            time.sleep(0.1)
        assert len(mine) == 1, received
        assert mine[0]["data"]["type"] == "feccft"
        assert mine[0]["log_id"] == mine[0]["data"]["log_id"]
        assert all(e["data"]["type"] == "feccft" for e in events)
        assert all(auth == "Bearer py-stream-token" for auth, _ in received)

        paused = mgmt.log_streams.update(stream.id, status="paused")
        assert paused.status == "paused"
    finally:
        mgmt.log_streams.delete(stream.id)
    with pytest.raises(NotFoundError):
        mgmt.log_streams.get(stream.id)


def test_other_stream_types_are_refused(mgmt):
    from auth0.management import CreateLogStreamDatadogRequestBody, LogStreamDatadogSink

    with pytest.raises(BadRequestError):
        mgmt.log_streams.create(
            request=CreateLogStreamDatadogRequestBody(
                type="datadog", sink=LogStreamDatadogSink(datadog_api_key="k", datadog_region="us")
            )
        )
