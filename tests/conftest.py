"Offline, CPU-only test settings and tiny-model fixtures."

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup fails at once instead of hanging
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import pytest, torch
from lynx_lite.chat_format import tiny_tokenizer, encode_batch


@pytest.fixture(scope="session")
def tok():
    return tiny_tokenizer()


@pytest.fixture
def batch(tok):
    "Two questions with answers of different lengths (so one row is left-padded)."
    return encode_batch(tok, ["what colour is the big circle?", "how many?"], ["red", "three small squares"])


@pytest.fixture
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def chat_endpoint():
    """Start local OpenAI-compatible chat-completions endpoints: `chat_endpoint(reply)` -> (base URL, the request
    bodies received); `reply(body)` is the answer's text. Stopped after the test."""
    servers = []

    def start(reply):
        seen = []

        class Fake(BaseHTTPRequestHandler):
            def do_POST(self):
                seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                out = json.dumps({"choices": [{"message": {"content": reply(seen[-1])}}]}).encode()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/v1", seen

    yield start
    for server in servers:
        server.shutdown()
