"""Real servers on the loopback address that record what they are sent:
an HTTP receiver (webhooks, Slack) and an SMTP server (mail)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class Receiver:
    """An HTTP server that answers ``status`` (503 by default) to the first
    ``fail`` POSTs, then 204."""

    def __init__(self, fail: int = 0, status: int = 503) -> None:
        self.fail, self.status, self.attempts = fail, status, 0
        self.requests: list[Request] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail:
                    self.send_response(receiver.status)
                else:
                    receiver.requests.append(Request(self.path, dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def bodies(self) -> list[Any]:
        return [r.json for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailReceiver:
    """An SMTP server (aiosmtpd) on the loopback address; ``messages`` holds
    what it accepted."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any,  # noqa: N802 - aiosmtpd's
                                  envelope: Any) -> str:
                receiver.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        from ttfb.bus import free_port

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class FakeGitHub:
    """The parts of GitHub's REST API ``ttfb check`` calls, on the loopback
    address: check runs, and a pull request's comments. ``fail`` maps a
    (method, path suffix) to the statuses to answer first, in order."""

    def __init__(self, token: str = "gh-token") -> None:
        self.token = token
        self.requests: list[tuple[str, str, Any]] = []
        self.checks: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.fail: dict[tuple[str, str], list[int]] = {}
        self.next_id = 1
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, payload = fake.route(method, self.path.split("?")[0], body,
                                             self.headers.get("Authorization", ""))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's names
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._answer("PATCH")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method: str, path: str, body: Any, auth: str) -> tuple[int, Any]:
        import re

        self.requests.append((method, path, body))
        for (m, suffix), statuses in self.fail.items():
            if m == method and path.endswith(suffix) and statuses:
                return statuses.pop(0), {"message": "injected"}
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}
        repo = r"/repos/[^/]+/[^/]+"
        if method == "POST" and re.fullmatch(repo + "/check-runs", path):
            return 201, self._new(self.checks, body)
        if method == "PATCH" and (m := re.fullmatch(repo + r"/check-runs/(\d+)", path)):
            self.checks[int(m[1])].update(body)
            return 200, self.checks[int(m[1])]
        if re.fullmatch(repo + r"/issues/\d+/comments", path):
            if method == "GET":
                return 200, list(self.comments.values())
            return 201, self._new(self.comments, body)
        if method == "PATCH" and (m := re.fullmatch(repo + r"/issues/comments/(\d+)", path)):
            self.comments[int(m[1])].update(body)
            return 200, self.comments[int(m[1])]
        return 404, {"message": "Not Found"}

    def _new(self, where: dict[int, dict[str, Any]], body: Any) -> dict[str, Any]:
        item = {"id": self.next_id, **(body or {})}
        where[self.next_id] = item
        self.next_id += 1
        return item

    def calls(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
