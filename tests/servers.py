"""Servers on loopback for tests: the real local model behind llama_cpp.server, and a
fault-injecting OpenAI-compatible server (a test double for faults only)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llmops_mlflow import assets

LLAMA_ALIAS = "smollm2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ok(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


@contextmanager
def llama_server() -> Iterator[str]:
    """Serve the packaged SmolLM2 with llama_cpp.server; yields the `/v1` base URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(assets.smollm2_gguf()),
            "--model_alias",
            LLAMA_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        if not wait_ok(f"{base}/models", seconds=120):
            raise RuntimeError("llama_cpp.server did not answer within 120 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Fault:
    """One scripted reply: an HTTP status, an optional Retry-After, a delay, or garbage."""

    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0
    body: str | None = None  # raw body instead of a valid completion (e.g. invalid JSON)
    drop: bool = False  # close the connection without answering


@dataclass
class FaultScript:
    """Replies in order, then `then` for every later request; records what it received."""

    faults: list[Fault] = field(default_factory=list)
    then: Fault = field(default_factory=Fault)
    answer: str = "The answer is 42."
    requests: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, payload: dict) -> Fault:
        with self.lock:
            self.requests.append(payload)
            self.times.append(time.monotonic())
            return self.faults.pop(0) if self.faults else self.then


def _completion(payload: dict, text: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": payload.get("model", "fake"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def _handler(script: FaultScript) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            payload = json.loads(self.rfile.read(length) or b"{}")
            fault = script.next(payload)
            time.sleep(fault.delay_s)
            if fault.drop:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            body = (
                fault.body
                if fault.body is not None
                else json.dumps(
                    _completion(payload, script.answer)
                    if fault.status == 200
                    else {"error": {"message": f"injected {fault.status}", "type": "test"}}
                )
            )
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/json")
            if fault.retry_after is not None:
                self.send_header("Retry-After", fault.retry_after)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

    return Handler


@contextmanager
def fault_server(script: FaultScript, port: int = 0) -> Iterator[str]:
    """An OpenAI-compatible chat endpoint that plays `script`; yields the `/v1` base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
