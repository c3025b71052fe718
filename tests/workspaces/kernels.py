"""Talking to a JupyterLab kernel the way JupyterLab does: created over REST, code executed
over its WebSocket (the legacy JSON framing: one socket, every message names its channel).

``Kernel`` works against any base URL: a JupyterLab directly (with the identity headers the
proxy would send) or ``/user/<name>/`` through labdeck's proxy (with a labdeck credential).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

EXECUTE_TIMEOUT_S = 120.0  # a safety net: the first import of mlflow in a cold kernel is slow


@dataclass
class Execution:
    status: str  # the execute_reply's: "ok" or "error"
    stdout: str
    result: str | None  # text/plain of the execute_result, if any
    error: str | None = None  # "<ename>: <evalue>" when status is "error"


@dataclass
class Kernel:
    base: str  # http://host:port/user/alice/
    headers: dict[str, str]
    kernel_id: str
    session: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def create(cls, base: str, headers: dict[str, str]) -> Kernel:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            made = http.post("api/kernels", json={"name": "python3"})
        assert made.status_code == 201, f"creating a kernel: {made.status_code} {made.text}"
        return cls(base, headers, made.json()["id"])

    @property
    def channels_url(self) -> str:
        return self.base.replace("http", "ws", 1) + f"api/kernels/{self.kernel_id}/channels?session_id={self.session}"

    def open(self, **options: Any) -> ClientConnection:
        return connect(self.channels_url, additional_headers=self.headers, open_timeout=60, **options)

    def run(self, code: str, ws: ClientConnection | None = None) -> Execution:
        """Execute ``code`` and wait for its reply; on ``ws`` if given, else on a socket of its own."""
        if ws is None:
            with self.open() as own:
                return self.run(code, own)
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps(execute_request(code, msg_id, self.session)))
        stdout, result, reply, idle = [], None, None, False
        deadline = time.monotonic() + EXECUTE_TIMEOUT_S
        # The reply comes on the shell channel, the output on iopub, in either order: done
        # when both the reply and iopub's "idle" for this request have come.
        while (reply is None or not idle) and time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=EXECUTE_TIMEOUT_S))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream" and content.get("name") == "stdout":
                stdout.append(content["text"])
            elif kind == "execute_result":
                result = content["data"].get("text/plain")
            elif kind == "execute_reply":
                reply = content
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        assert reply is not None and idle, f"no execute_reply or idle for {code!r} within {EXECUTE_TIMEOUT_S} s"
        error = f"{reply.get('ename')}: {reply.get('evalue')}" if reply["status"] == "error" else None
        return Execution(reply["status"], "".join(stdout), result, error)

    def delete(self) -> None:
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=60) as http:
            http.delete(f"api/kernels/{self.kernel_id}")


def execute_request(code: str, msg_id: str, session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": session,
            "date": "",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "buffers": [],
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    }
