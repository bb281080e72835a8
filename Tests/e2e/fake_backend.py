"""A fake OpenAI-compatible backend: a test double for the proxy and launcher tests.

Answers /v1/completions and /v1/chat/completions (streamed and not) with a deterministic text that
depends only on the prompt and max_tokens, so every backend gives the same answer. Takes the flags
`pagoda serve` takes that the tests use (`--host --port --data-parallel-size --data-parallel-rank`)
and ignores the rest. Failure injection by markers in the prompt:
  [[drop]]            close the connection without answering
  [[break-after:K]]   send K tokens (stream) or half the body (non-stream), then cut the connection
  [[slow:MS]]         MS milliseconds per token (default --token-delay)
  [[status:N]]        answer HTTP N with an error body
  [[pad:N]]           N more bytes in every token (big answers from few events)
(`--inject MARKERS` applies markers to every request of this backend.)
GET /stats gives {"rank", "in_flight", "completed", "disconnected", "request_ids"}.
"""
import argparse
import hashlib
import json
import re
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]


class State:
    def __init__(self, rank, token_delay, inject=""):
        self.rank = rank
        self.inject = inject
        self.token_delay = token_delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.completed = 0
        self.disconnected = 0
        self.request_ids = []


def tokens_for(prompt_text, n):
    digest = hashlib.sha256(prompt_text.encode()).digest()
    return [WORDS[(digest[i % len(digest)] + i) % len(WORDS)] + " " for i in range(n)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State = None

    def log_message(self, fmt, *args):
        pass

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        st = self.state
        if self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "pagoda"}]})
        elif self.path == "/stats":
            with st.lock:
                self._json(200, {"rank": st.rank, "in_flight": st.in_flight, "completed": st.completed,
                                 "disconnected": st.disconnected, "request_ids": st.request_ids[-2000:]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "NotFoundError", "code": 404}})

    def do_POST(self):
        st = self.state
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            return self._json(404, {"error": {"message": "not found", "type": "NotFoundError", "code": 404}})
        if chat:
            prompt = "".join(f"{m.get('role')}: {m.get('content')}\n" for m in body.get("messages", []))
        else:
            prompt = body.get("prompt", "")
            prompt = prompt if isinstance(prompt, str) else json.dumps(prompt)
        with st.lock:
            st.request_ids.append(self.headers.get("X-Request-Id", ""))
        markers = prompt + st.inject
        if "[[drop]]" in markers:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        m = re.search(r"\[\[status:(\d+)\]\]", markers)
        if m:
            code = int(m.group(1))
            return self._json(code, {"error": {"message": f"injected {code}", "type": "InjectedError", "code": code}})
        m = re.search(r"\[\[slow:(\d+)\]\]", markers)
        delay = int(m.group(1)) / 1000 if m else st.token_delay
        m = re.search(r"\[\[break-after:(\d+)\]\]", markers)
        break_after = int(m.group(1)) if m else None
        n = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        toks = tokens_for(prompt, n)
        m = re.search(r"\[\[pad:(\d+)\]\]", markers)
        if m:
            toks = [t + "." * int(m.group(1)) for t in toks]
        rid = "cmpl-fake-%d-%d" % (st.rank, int(time.time() * 1e6))
        model = body.get("model") or "fake-model"
        with st.lock:
            st.in_flight += 1
        try:
            if body.get("stream"):
                self._stream(chat, toks, rid, model, delay, break_after)
            else:
                self._whole(chat, toks, rid, model, delay, break_after, len(prompt))
            with st.lock:
                st.completed += 1
        except (BrokenPipeError, ConnectionResetError):
            with st.lock:
                st.disconnected += 1
            self.close_connection = True
        finally:
            with st.lock:
                st.in_flight -= 1

    def _wait_unless_client_left(self, seconds):
        """Sleeps like generation would, but raises ConnectionResetError as soon as the client hangs up
        (what a real server does when it cancels a non-streamed request whose client went away)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.01))
            if readable:
                try:
                    gone = self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    raise ConnectionResetError("client left before the answer")
                time.sleep(min(left, 0.01))  # pipelined bytes of a next request: not a hang-up

    def _whole(self, chat, toks, rid, model, delay, break_after, prompt_len):
        self._wait_unless_client_left(delay * len(toks))
        text = "".join(toks)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
            obj = "text_completion"
        data = json.dumps({"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice],
                           "usage": {"prompt_tokens": prompt_len // 4, "completion_tokens": len(toks),
                                     "total_tokens": prompt_len // 4 + len(toks)}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if break_after is not None:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)

    def _chunk(self, payload: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.wfile.flush()

    def _stream(self, chat, toks, rid, model, delay, break_after):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        created = int(time.time())
        for i, tok in enumerate(toks):
            if break_after is not None and i == break_after:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            time.sleep(delay)
            last = i == len(toks) - 1
            if chat:
                delta = {"role": "assistant", "content": tok} if i == 0 else {"content": tok}
                event = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": "length" if last else None}]}
            else:
                event = {"id": rid, "object": "text_completion", "created": created, "model": model,
                         "choices": [{"index": 0, "text": tok, "logprobs": None,
                                      "finish_reason": "length" if last else None}]}
            self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-parallel-size", type=int, default=1)
    parser.add_argument("--data-parallel-rank", type=int, default=0)
    parser.add_argument("--token-delay", type=float, default=0.002)
    parser.add_argument("--inject", default="", help="markers applied to every completion request, e.g. [[drop]]")
    parser.add_argument("--die-after", type=float, default=None, help="exit with status 3 after this many seconds")
    args, _unknown = parser.parse_known_args()
    Handler.state = State(args.data_parallel_rank, args.token_delay, args.inject)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"fake backend rank {args.data_parallel_rank}/{args.data_parallel_size} listening on {args.host}:{args.port}",
          flush=True)
    if args.die_after is not None:
        def die():
            time.sleep(args.die_after)
            print("fake backend: dying on purpose", flush=True)
            import os
            os._exit(3)
        threading.Thread(target=die, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
