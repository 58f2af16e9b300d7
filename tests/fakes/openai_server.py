"""A fake OpenAI-compatible LLM server: real HTTP + SSE on 127.0.0.1, scripted per test.

Used by the provider-adapter tests, the runtime tests and the benchmarks (issues 4, 5).
It is a plain ASGI app served by uvicorn (httptools) on a background thread, so it costs
nothing to import and serves 50+ concurrent streams.

Starting it
    In pytest, use the ``fake_llm`` fixture (``tests/fixtures/fake_llm.py``): one server per
    test session, reset before every test, and ``127.0.0.1`` added to
    ``settings.OUTBOUND_ALLOWLIST`` for the test (the guarded client refuses loopback
    otherwise). Elsewhere: ``server = FakeLLMServer().start()`` … ``server.stop()``, or
    from a shell ``python -m tests.fakes.openai_server --port 8765 --tokens 200
    --delay 0.005`` (benchmarks; run the product with ``OUTBOUND_ALLOWLIST=127.0.0.1``).

Control API (``FakeLLMServer``)
    ``base_url``      ``http://127.0.0.1:<port>/v1`` (OpenAI/custom base URL)
    ``url``           ``http://127.0.0.1:<port>`` (root, for Azure/Anthropic/Ollama/DashScope)
    ``default``       the :class:`Reply` used when the queue is empty (assignable)
    ``queue(*replies)``  replies for the next chat calls, first in first out
    ``fail_next(k, status=429, retry_after=None)``  the next ``k`` chat calls fail
    ``expected_key``  if set, requests without this key (Bearer / ``api-key`` /
                      ``x-api-key``) get a 401 whose message echoes the key they sent —
                      like a careless provider, so tests can prove we never repeat it
    ``requests``      every request received, as :class:`RecordedRequest` (method, path,
                      query, headers with lower-case names, parsed JSON ``body``)
    ``chat_requests``  only the model calls (chat/completions, messages, generation)
    ``release()``     ends every stalled request; ``reset()`` = release + clear everything

A chat call consumes one :class:`Reply` (see its fields: text or N generated tokens with
pacing, streamed tool calls, an HTTP error with Retry-After, a stall, a malformed chunk, an
abrupt disconnect). Endpoints:

    GET  …/models                          OpenAI/custom/DashScope-compatible/Azure model list
    GET  /openai/deployments               Azure deployment list
    POST …/chat/completions                OpenAI chat completions (also Azure deployments,
                                           DashScope compatible-mode, Ollama /v1), stream
                                           or not; usage in the last chunk when
                                           ``stream_options.include_usage``
    POST /v1/messages                      Anthropic messages (stream or not, text + tool_use)
    POST …/services/aigc/text-generation/generation   DashScope native generation
    GET  /api/tags                         Ollama model list
    GET  /redirect?to=URL[&status=302]     a redirect (to test redirect checks)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

DEFAULT_TEXT = "Hello from the fake LLM server."
MODEL_IDS = ["fake-model", "fake-model-mini"]


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str = ""

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass
class Reply:
    """What the next model call answers. Defaults: a short text, streamed word by word."""

    text: str | None = None  # the answer; None → DEFAULT_TEXT (or "" with tool calls)
    tokens: list[str] | None = None  # explicit stream pieces (override text splitting)
    token_count: int | None = None  # generate N tokens "t0 t1 …" (benchmarks: 200)
    token_delay: float = 0.0  # seconds between streamed pieces
    first_token_delay: float = 0.0  # seconds before the first piece (after headers)
    tool_calls: list[ToolCall] = field(default_factory=list)
    arg_chunk_size: int = 8  # streamed tool arguments are split into pieces this long
    status: int = 200  # anything else: an error response with an OpenAI-style error body
    error_message: str = ""
    retry_after: float | str | None = None  # the Retry-After header of an error response
    stall: bool = False  # never answer (until release()/reset()): for timeout tests
    stall_after_tokens: int | None = None  # stream N pieces, then stall
    malformed_after_tokens: int | None = None  # stream N pieces, then a broken chunk
    disconnect_after_tokens: int | None = None  # stream N pieces, then drop the connection
    prompt_tokens: int | None = None  # usage; None → computed from the request
    completion_tokens: int | None = None
    finish_reason: str | None = None

    def pieces(self) -> list[str]:
        if self.tokens is not None:
            return list(self.tokens)
        if self.token_count is not None:
            return [f"t{i} " for i in range(self.token_count)]
        text = self.text if self.text is not None else ("" if self.tool_calls else DEFAULT_TEXT)
        return _split_words(text)

    def full_text(self) -> str:
        return "".join(self.pieces())


def _split_words(text: str) -> list[str]:
    pieces: list[str] = []
    current = ""
    for char in text:
        current += char
        if char == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_body: bytes = b""
    received_at: float = 0.0

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


class _Disconnect(Exception):
    pass


def _estimate_tokens(body: Any) -> int:
    return max(1, len(json.dumps(body, ensure_ascii=False)) // 4) if body else 1


class FakeLLMServer:
    """The server and its control handle (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.default = Reply()
        self.expected_key: str | None = None
        self.requests: list[RecordedRequest] = []
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._release_generation = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._server: Any = None

    # --- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def queue(self, *replies: Reply) -> FakeLLMServer:
        with self._lock:
            self._queue.extend(replies)
        return self

    def fail_next(
        self, count: int, *, status: int = 429, retry_after: float | str | None = None
    ) -> FakeLLMServer:
        return self.queue(*[Reply(status=status, retry_after=retry_after) for _ in range(count)])

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if _is_model_call(r.method, r.path)]

    def release(self) -> None:
        with self._lock:
            self._release_generation += 1

    def reset(self) -> None:
        self.release()
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.default = Reply()
            self.expected_key = None

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.pop(0) if self._queue else self.default

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        import uvicorn

        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose
        # protocol says TCP; with proto 0 every small SSE write after the first waits for
        # the client's delayed ACK (40 ms) on a reused keep-alive connection.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="httptools",
            backlog=1024,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-llm"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping = True
        self.release()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
            headers=headers,
            body=body,
            raw_body=raw,
            received_at=time.monotonic(),
        )
        self.requests.append(request)
        try:
            await self._route(request, send)
        except _Disconnect:
            return

    async def _route(self, req: RecordedRequest, send: Any) -> None:
        path, method = req.path.rstrip("/"), req.method
        if path == "/redirect":
            status = int(req.query.get("status", "302"))
            await _respond(send, status, b"", headers=[(b"location", req.query["to"].encode())])
            return
        if self.expected_key is not None and not self._authorized(req):
            sent = req.bearer or req.headers.get("api-key") or req.headers.get("x-api-key") or ""
            await _json(
                send,
                401,
                {
                    "error": {
                        "message": f"Incorrect API key provided: {sent}.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
            return
        if method == "GET" and path == "/api/tags":
            await _json(
                send, 200, {"models": [{"name": f"{m}:latest", "model": m} for m in MODEL_IDS]}
            )
        elif method == "GET" and (path.endswith("/models") or path == "/openai/deployments"):
            await _json(
                send,
                200,
                {"object": "list", "data": [{"id": m, "object": "model"} for m in MODEL_IDS]},
            )
        elif method == "POST" and path.endswith("/chat/completions"):
            await self._chat(req, send, self._next_reply())
        elif method == "POST" and path.endswith("/messages"):
            await self._anthropic(req, send, self._next_reply())
        elif method == "POST" and path.endswith("/generation"):
            await self._dashscope(req, send, self._next_reply())
        else:
            await _json(send, 404, {"error": {"message": f"No route for {method} {path}."}})

    def _authorized(self, req: RecordedRequest) -> bool:
        sent = {req.bearer, req.headers.get("api-key"), req.headers.get("x-api-key")}
        return self.expected_key in sent

    async def _stall(self) -> None:
        generation = self._release_generation
        # Polled: release() is called from the test thread, not this server loop.
        while self._release_generation == generation and not self._stopping:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def _error_or_stall(self, reply: Reply, send: Any) -> bool:
        """Handle the replies that are not a normal answer; True when handled."""
        if reply.stall:
            await self._stall()
            raise _Disconnect
        if reply.status != 200:
            headers = []
            if reply.retry_after is not None:
                headers.append((b"retry-after", str(reply.retry_after).encode()))
            message = reply.error_message or {
                429: "Rate limit reached, slow down.",
                500: "The server had an error while processing your request.",
                503: "The engine is currently overloaded.",
            }.get(reply.status, f"Scripted error {reply.status}.")
            await _json(
                send,
                reply.status,
                {"error": {"message": message, "type": "fake_error", "code": str(reply.status)}},
                headers=headers,
            )
            return True
        return False

    async def _pace(self, reply: Reply, index: int) -> None:
        """Sleep before piece ``index``, and act out the scripted stall/malformed/drop."""
        delay = reply.first_token_delay if index == 0 else reply.token_delay
        if delay:
            await asyncio.sleep(delay)

    async def _scripted_break(self, reply: Reply, sent: int, send: Any) -> None:
        if reply.stall_after_tokens is not None and sent == reply.stall_after_tokens:
            await self._stall()
            raise _Disconnect
        if reply.malformed_after_tokens is not None and sent == reply.malformed_after_tokens:
            await _sse(send, b'data: {"id": "broken", "choices": [{"delta": \n\n')
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            raise _Disconnect
        if reply.disconnect_after_tokens is not None and sent == reply.disconnect_after_tokens:
            # Ending the body without the terminating chunk makes uvicorn close the socket.
            raise RuntimeError("scripted disconnect")

    # --- OpenAI chat completions ----------------------------------------------------------

    async def _chat(self, req: RecordedRequest, send: Any, reply: Reply) -> None:
        if await self._error_or_stall(reply, send):
            return
        body = req.body or {}
        model = body.get("model", MODEL_IDS[0])
        pieces = reply.pieces()
        prompt_tokens = reply.prompt_tokens or _estimate_tokens(body.get("messages"))
        completion_tokens = reply.completion_tokens or max(1, len(pieces)) + sum(
            len(tc.arguments_json()) // 4 for tc in reply.tool_calls
        )
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        tool_ids = [tc.id or f"call_{uuid.uuid4().hex[:10]}" for tc in reply.tool_calls]
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if not body.get("stream"):
            for index in range(len(pieces)):
                await self._pace(reply, index)
            message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) or None}
            if reply.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": tool_id,
                        "type": "function",
                        "function": {"name": tc.name, "arguments": tc.arguments_json()},
                    }
                    for tool_id, tc in zip(tool_ids, reply.tool_calls, strict=True)
                ]
            await _json(
                send,
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                },
            )
            return

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        await _start_sse(send)
        await _sse(send, chunk({"role": "assistant", "content": ""}))
        sent = 0
        for index, piece in enumerate(pieces):
            await self._scripted_break(reply, sent, send)
            await self._pace(reply, index)
            await _sse(send, chunk({"content": piece}))
            sent += 1
        for position, (tool_id, tc) in enumerate(zip(tool_ids, reply.tool_calls, strict=True)):
            await self._scripted_break(reply, sent, send)
            head = {
                "index": position,
                "id": tool_id,
                "type": "function",
                "function": {"name": tc.name, "arguments": ""},
            }
            await _sse(send, chunk({"tool_calls": [head]}))
            args = tc.arguments_json()
            size = max(1, reply.arg_chunk_size)
            for start in range(0, len(args), size):
                if reply.token_delay:
                    await asyncio.sleep(reply.token_delay)
                piece = {"index": position, "function": {"arguments": args[start : start + size]}}
                await _sse(send, chunk({"tool_calls": [piece]}))
            sent += 1
        await self._scripted_break(reply, sent, send)
        await _sse(send, chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await _sse(send, b"data: " + json.dumps(data).encode() + b"\n\n")
        await _sse(send, b"data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # --- Anthropic messages ------------------------------------------------------------------

    async def _anthropic(self, req: RecordedRequest, send: Any, reply: Reply) -> None:
        if await self._error_or_stall(reply, send):
            return
        body = req.body or {}
        model = body.get("model", MODEL_IDS[0])
        pieces = reply.pieces()
        input_tokens = reply.prompt_tokens or _estimate_tokens(body.get("messages"))
        output_tokens = reply.completion_tokens or max(1, len(pieces))
        stop_reason = "tool_use" if reply.tool_calls else "end_turn"
        message_id = f"msg_{uuid.uuid4().hex[:12]}"
        tool_ids = [tc.id or f"toolu_{uuid.uuid4().hex[:10]}" for tc in reply.tool_calls]
        if not body.get("stream"):
            content: list[dict[str, Any]] = []
            if pieces:
                content.append({"type": "text", "text": "".join(pieces)})
            for tool_id, tc in zip(tool_ids, reply.tool_calls, strict=True):
                content.append(
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": tc.name,
                        "input": json.loads(tc.arguments_json() or "{}"),
                    }
                )
            await _json(
                send,
                200,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                },
            )
            return

        async def event(name: str, data: dict[str, Any]) -> None:
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            await _sse(send, payload)

        await _start_sse(send)
        await event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
        )
        index = 0
        if pieces:
            await event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for position, piece in enumerate(pieces):
                await self._scripted_break(reply, position, send)
                await self._pace(reply, position)
                await event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            await event("content_block_stop", {"type": "content_block_stop", "index": 0})
            index = 1
        for offset, (tool_id, tc) in enumerate(zip(tool_ids, reply.tool_calls, strict=True)):
            block_index = index + offset
            await event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": block_index,
                    "content_block": {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": tc.name,
                        "input": {},
                    },
                },
            )
            args = tc.arguments_json()
            size = max(1, reply.arg_chunk_size)
            for start in range(0, len(args), size):
                await event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": block_index,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": args[start : start + size],
                        },
                    },
                )
            await event("content_block_stop", {"type": "content_block_stop", "index": block_index})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # --- DashScope native generation --------------------------------------------------------

    async def _dashscope(self, req: RecordedRequest, send: Any, reply: Reply) -> None:
        if await self._error_or_stall(reply, send):
            return
        body = req.body or {}
        pieces = reply.pieces()
        await _json(
            send,
            200,
            {
                "request_id": uuid.uuid4().hex,
                "output": {"text": "".join(pieces), "finish_reason": "stop"},
                "usage": {
                    "input_tokens": reply.prompt_tokens or _estimate_tokens(body.get("input")),
                    "output_tokens": reply.completion_tokens or max(1, len(pieces)),
                },
            },
        )


def _is_model_call(method: str, path: str) -> bool:
    path = path.rstrip("/")
    return method == "POST" and (
        path.endswith("/chat/completions")
        or path.endswith("/messages")
        or path.endswith("/generation")
    )


async def _respond(
    send: Any, status: int, body: bytes, *, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _json(
    send: Any, status: int, data: Any, *, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _respond(
        send,
        status,
        json.dumps(data).encode(),
        headers=[(b"content-type", b"application/json"), *(headers or [])],
    )


async def _start_sse(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
            ],
        }
    )


async def _sse(send: Any, payload: bytes) -> None:
    await send({"type": "http.response.body", "body": payload, "more_body": True})


def main() -> None:  # pragma: no cover - a manual/benchmark entry point
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tokens", type=int, default=None, help="stream N generated tokens")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeLLMServer(port=args.port)
    server.default = Reply(
        token_count=args.tokens, token_delay=args.delay, first_token_delay=args.first_token_delay
    )
    server.start()
    print(f"fake LLM server on {server.base_url}", flush=True)  # noqa: T201
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
