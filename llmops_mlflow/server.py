"""`llmops serve`: MLflow's scoring app, with /metrics on its port and a guard on /invocations.

MLflow's scoring server answers a request without a Content-Type with a 500 and reads bodies
of any size. The guard in front of it answers those with a 4xx and a reason instead, so that a
malformed or oversized request never reaches the model, and counts every response by status.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlflow.exceptions import MlflowException
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from llmops_mlflow.errors import ConfigError

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 1_000_000
DRAIN_BYTES = 16_000_000
# What MLflow's scoring server parses: JSON, CSV and Parquet.
SUPPORTED_TYPES = ("application/json", "text/csv", "application/vnd.apache.parquet")
HTTP_RESPONSES = Counter(
    "llm_http_responses", "Responses to /invocations by HTTP status code.", ["code"]
)


class Rejection(Exception):
    """A request answered by the guard itself, with a status code and a reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def build_app(model_uri: str, max_body_bytes: int = MAX_BODY_BYTES) -> Asgi:
    """Load the model once and return MLflow's scoring app behind the guard, with /metrics."""
    from fastapi import Response
    from mlflow.pyfunc import scoring_server

    try:
        model = scoring_server.load_model_with_mlflow_config(model_uri)
    except MlflowException as err:
        raise ConfigError(
            f"cannot load model {model_uri!r}: {err.message}; check the name and alias "
            "(llmops register prints them) and MLFLOW_TRACKING_URI"
        ) from err
    app = scoring_server.init(model)

    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"])
    return InvocationGuard(app, max_body_bytes)


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5000, **options: Any) -> None:
    """Serve the model until interrupted (one process: the model and metrics load once)."""
    import uvicorn

    _check_bindable(host, port)  # before the model load, which takes seconds
    app = build_app(model_uri, **options)
    logger.info("serving %s on http://%s:%d (/invocations, /ping, /metrics)", model_uri, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", workers=1)


def _check_bindable(host: str, port: int) -> None:
    """uvicorn reports a busy port only after the model has loaded, and exits with code 3."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port, "
            "or a --host address of this machine"
        ) from err


class InvocationGuard:
    """ASGI middleware: checks the type and size of /invocations requests before the model."""

    def __init__(self, app: Asgi, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/invocations":
            await self.app(scope, receive, send)
            return
        sent: dict[str, int] = {}

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, counted)
        except Rejection as rejection:
            await _reply(counted, rejection.status, rejection.code, rejection.message)
        except Exception as err:  # MLflow's parsing raises on some malformed inputs
            if "status" in sent:
                raise
            logger.warning("malformed request: %s: %s", type(err).__name__, err)
            message = f"the request could not be read: {type(err).__name__}: {err}"
            await _reply(counted, 400, "BAD_REQUEST", message)
        finally:
            HTTP_RESPONSES.labels(code=str(sent.get("status", 0))).inc()

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        _check_content_type(_header(scope, b"content-type"))
        declared = _header(scope, b"content-length")
        if declared is not None and not declared.isdigit():
            raise Rejection(400, "BAD_REQUEST", f"Content-Length {declared!r} is not a number")
        if declared is not None and int(declared) > self.max_body_bytes:
            await _drain(receive, DRAIN_BYTES)
            raise _too_large(declared, self.max_body_bytes)
        body = await _read_body(receive, self.max_body_bytes)
        if _mime(_header(scope, b"content-type")) == "application/json":
            _check_json(body)
        await self.app(scope, _replay(body, receive), send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _mime(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _check_content_type(value: str | None) -> None:
    if _mime(value) not in SUPPORTED_TYPES:
        raise Rejection(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type {value or '(missing)'} is not supported; send application/json, "
            'e.g. {"dataframe_records": [{"question": "..."}]}',
        )


def _check_json(body: bytes) -> None:
    """Refuse the JSON that MLflow's parser turns into a 500: nesting past Python's recursion
    limit, and integers of over 4,300 digits. Other invalid JSON gets MLflow's own 400."""
    try:
        json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    except RecursionError as err:
        raise Rejection(
            400, "BAD_REQUEST", "the JSON is nested too deeply to read; send rows of plain strings"
        ) from err
    except ValueError as err:
        raise Rejection(
            400,
            "BAD_REQUEST",
            f"the JSON holds a number too long to read ({err.args[0].split(':')[0]}); send "
            "each question as a string",
        ) from err


def _too_large(size: str, limit: int) -> Rejection:
    return Rejection(
        413,
        "REQUEST_TOO_LARGE",
        f"request body of {size} bytes is over the limit of {limit} bytes; send fewer or "
        "shorter questions per request",
    )


async def _drain(receive: Receive, cap: int) -> None:
    """Read and drop a refused body, up to `cap` bytes.

    Closing a connection with unread data makes the kernel reset it, and the client then sees
    a reset instead of the 413 and its reason.
    """
    seen = 0
    while seen <= cap:
        message = await receive()
        seen += len(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Rejection(400, "BAD_REQUEST", "the client disconnected before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            if message.get("more_body", False):
                await _drain(receive, DRAIN_BYTES)
            raise _too_large(f"more than {limit}", limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()  # waits for the client to disconnect, as a server would
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
