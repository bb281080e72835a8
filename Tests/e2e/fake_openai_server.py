"""A small OpenAI-compatible streaming server for testing `pagoda bench serve` without a model.

It answers GET /v1/models and streaming POST /v1/completions and /v1/chat/completions the way vLLM does:
one SSE chunk per token, then (with stream_options.include_usage) a usage chunk, then `data: [DONE]`.
A request produces `max_tokens` tokens when `ignore_eos` is set, else min(max_tokens, --eos-after).
Failure modes for tests: --fail-every K answers every K-th request with HTTP 500 and an OpenAI error body;
--error-mid-stream K sends an error event instead of finishing every K-th request.
--close-after-response-ms MS keeps each connection open MS ms after a response, without reading, then closes it
without having announced it (as llama-server closes idle keep-alive connections): a request the client sends on it
in that window is never read; --reset-after-response-ms MS the same with a reset (SO_LINGER 0) instead of a close.
--log FILE appends each request body as one JSON line. Binds 127.0.0.1 on --port (0 = any free port) and prints
`PORT <n>` once listening. Standard library only.
"""
import argparse
import itertools
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counter = itertools.count(1)
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/models":
            args = self.server.args
            self.send_json(200, {"object": "list", "data": [
                {"id": args.model, "object": "model", "owned_by": "fake", "root": args.root or args.model}]})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})

    def chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, obj):
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        self.chunk(f"data: {payload}\n\n".encode())

    def do_POST(self):
        args = self.server.args
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self.send_json(400, {"error": {"message": "invalid JSON", "type": "BadRequestError", "code": 400}})
            return
        with Handler.lock:
            n = next(Handler.counter)
            if args.log:
                with open(args.log, "a") as f:
                    f.write(json.dumps({"path": self.path, "body": body,
                                        "request_id": self.headers.get("x-request-id")}) + "\n")
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})
            return
        if args.fail_every and n % args.fail_every == 0:
            self.send_json(500, {"error": {"message": f"deliberate failure of request {n}",
                                           "type": "InternalServerError", "code": 500}})
            return
        max_tokens = body.get("max_completion_tokens" if chat else "max_tokens") or 16
        count = max_tokens if body.get("ignore_eos") else min(max_tokens, args.eos_after)
        include_usage = (body.get("stream_options") or {}).get("include_usage", False) and not args.no_usage
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        rid = f"cmpl-{n}"
        for i in range(count):
            time.sleep(args.token_delay_ms / 1000)
            if args.error_mid_stream and n % args.error_mid_stream == 0 and i == count // 2:
                self.event({"error": {"message": f"deliberate mid-stream failure of request {n}",
                                      "type": "InternalServerError", "code": 500}})
                break
            text = f" w{i}"
            if chat:
                choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
            else:
                choice = {"index": 0, "text": text, "finish_reason": None}
            self.event({"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
                        "model": body.get("model"), "choices": [choice]})
        if include_usage:
            usage = {"completion_tokens": count}
            if args.prompt_tokens is not None:
                usage["prompt_tokens"] = args.prompt_tokens
            self.event({"id": rid, "object": "text_completion", "model": body.get("model"), "choices": [],
                        "usage": usage})
        self.event("[DONE]")
        self.chunk(b"")
        if args.close_after_response_ms:
            time.sleep(args.close_after_response_ms / 1000)
            self.close_connection = True
        if args.reset_after_response_ms:
            # The same, but the close is a reset (linger 0), so the client's next write on it fails.
            time.sleep(args.reset_after_response_ms / 1000)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="fake-model")
    p.add_argument("--root", default=None)
    p.add_argument("--eos-after", type=int, default=5)
    p.add_argument("--token-delay-ms", type=float, default=1.0)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--error-mid-stream", type=int, default=0)
    p.add_argument("--no-usage", action="store_true")
    p.add_argument("--prompt-tokens", type=int, default=None)
    p.add_argument("--log", default=None)
    p.add_argument("--close-after-response-ms", type=float, default=0)
    p.add_argument("--reset-after-response-ms", type=float, default=0)
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.args = args
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
