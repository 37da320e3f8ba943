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
