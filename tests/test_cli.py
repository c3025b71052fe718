"""The ``labdeck`` command as a user runs it: a real process, a real port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labdeck", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"listening at (http://\S+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise AssertionError("labdeck did not report its address:\n" + "".join(lines))


def _wait_healthy(url: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            response = httpx.get(url + "/health", timeout=5)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("server never became healthy")
        time.sleep(0.1)


def test_up_starts_the_embedded_platform(tmp_path: Path):
    proc, url = _start(["up", "--port", "0"], tmp_path)
    try:
        assert _wait_healthy(url).text == "OK"
        assert httpx.get(url + "/version").text
        created = httpx.post(url + "/api/2.0/mlflow/experiments/create", json={"name": "cli"}).json()
        assert created == {"experiment_id": "1"}
        assert (tmp_path / ".labdeck" / "labdeck.db").exists()
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=30)[1]
    assert "Application shutdown complete" in rest  # SIGTERM shuts down gracefully


def test_server_flags_choose_the_data_folder(tmp_path: Path):
    data = tmp_path / "elsewhere"
    proc, url = _start(["server", "--port", "0", "--data-dir", str(data)], tmp_path)
    try:
        _wait_healthy(url)
        httpx.put(url + "/api/2.0/mlflow-artifacts/artifacts/0/x.txt", content=b"hi").raise_for_status()
        assert (data / "artifacts" / "0" / "x.txt").read_bytes() == b"hi"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_busy_port_is_a_clear_error(tmp_path: Path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "labdeck", "server", "--port", str(port), "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
