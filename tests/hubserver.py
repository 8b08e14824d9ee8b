"""A local stand-in for the Hugging Face Hub on 127.0.0.1: it serves files from a folder in the Hub's URL
layout (`/{org}/{name}/resolve/{revision}/{file}`, HEAD and GET with byte ranges, the Hub's headers and its
404 error codes) and records every path asked for, so tests can prove what was fetched. No network beyond
loopback."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _serve(self, body: bool):
                path = unquote(urlsplit(self.path).path)
                server.requests.append((self.command, path))
                parts = path.strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._error(404, "RepoNotFound")
                repo = server.root / parts[0] / parts[1]
                if not repo.is_dir():
                    return self._error(404, "RepoNotFound")
                f = repo / "/".join(parts[4:])
                if not f.is_file() or not f.resolve().is_relative_to(repo.resolve()):
                    return self._error(404, "EntryNotFound")
                data = f.read_bytes()
                start, end = 0, len(data) - 1
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start, end = int(a or 0), min(int(b) if b else len(data) - 1, len(data) - 1)
                chunk = data[start : end + 1]
                self.send_response(206 if rng else 200)
                self.send_header("ETag", '"' + hashlib.sha1(data).hexdigest() + '"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", str(len(chunk)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if body:
                    self.wfile.write(chunk)

            def _error(self, code: int, kind: str):
                msg = f"{kind}: {self.path}".encode()
                self.send_response(code)
                self.send_header("X-Error-Code", kind)
                self.send_header("X-Error-Message", kind)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(msg)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
