"""Remote objects through obstore: opening a URL, HEAD, ranged GETs, listing.

obstore (Python bindings of the Rust ``object_store`` crate, maintained by the
Apache Arrow project's community) speaks S3, GCS, Azure Blob and plain HTTP from
one API, takes configuration the way each ecosystem does (``AWS_ENDPOINT_URL``,
``AWS_ALLOW_HTTP``, the environment and instance-role credential chains, GCS and
Azure's own variables), signs requests itself, and retries transient failures
with exponential backoff under a timeout. ``obs://`` (Huawei OBS) is its S3 API
at the endpoint the user gives.

object_store reads the AWS environment only, not the AWS shared files: for
``s3://`` and ``obs://``, what the environment leaves unset (region, endpoint,
static keys) is taken from the profile named by ``AWS_PROFILE`` (else
``default``) in ``~/.aws/config`` and ``~/.aws/credentials`` (or the files that
``AWS_CONFIG_FILE`` and ``AWS_SHARED_CREDENTIALS_FILE`` name), as the AWS CLI
would; environment variables win, as they do there. A profile's
``credential_process`` is run as the AWS CLI runs it (the command split as a
POSIX shell would, no shell; its JSON ``Version`` 1, ``AccessKeyId``,
``SecretAccessKey``, ``SessionToken``, ``Expiration``), once per profile until the
credentials near their expiry; its output never reaches a message. A profile that
assumes a role or signs in with SSO is resolved by botocore (the AWS CLI's own
resolver: STS AssumeRole, the SSO portal with the cached token), whose keys are
handed to obstore as its credential provider (:class:`ProfileCredentials`).

Opening an object costs no round trip of its own: the first ranged GETs (the
object's head, the far signatures format detection looks at, and its tail as a
suffix range, all at once) tell its size (``Content-Range``), ETag,
last-modified time and storage class. The class is not part of object_store's
answer (its ``GetResult`` has ``meta``: path, size, ETag, last-modified,
version; ``attributes``: Content-Type and the like, no class), so that first
round is made with the standard library on a URL the client presigns, and its
headers read (S3 ``x-amz-storage-class``, OBS ``x-obs-storage-class``, GCS
``x-goog-storage-class``, Azure ``x-ms-access-tier``); for plain HTTP the GETs
are unsigned. Where that round cannot be made, obstore's HEAD opens the object
(and its error says why not). Neither the presigned URL nor any credential ever
reaches a message: errors name the URL as the user gave it.
"""

from __future__ import annotations

import configparser
import functools
import json
import os
import re
import shlex
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import NamedTuple, cast
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import (
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from obstore.store import from_url

from ..errors import RemoteError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any

    from obstore.store import ObjectStore, S3Config, S3Credential

#: Seconds one request may take, and to connect.
TIMEOUT = 30
CONNECT_TIMEOUT = 10
#: Retries of a transient failure (5xx, a dropped connection), with exponential backoff
#: from 100 ms to 2 s, for at most RETRY_TIMEOUT seconds in all.
MAX_RETRIES = 3
RETRY_TIMEOUT = 20
#: Headers that carry the storage class, per store, in the order looked at.
CLASS_HEADERS = ("x-amz-storage-class", "x-obs-storage-class", "x-goog-storage-class",
                 "x-ms-access-tier")
#: S3 and OBS send no class header for their standard class.
DEFAULT_CLASS = {"s3": "STANDARD", "obs": "STANDARD"}
#: The retry summary in obstore's messages, which names a timeout even when none occurred.
RETRY_NOTE = re.compile(r"max_retries: \d+, retry_timeout: \S+")
#: The kind of HTTP failure in obstore's debug dump (Timeout, Connect, Request, ...).
HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
#: ``Content-Range`` of a range request's answer: ``bytes FIRST-LAST/SIZE`` (206) or
#: ``bytes */SIZE`` (416, a range that starts past the end).
CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)$")
#: Why an object whose server ignores Range is refused.
RANGE_IGNORED = ("the server ignores Range requests: refusing to download the whole object "
                 "to read a few blocks")
#: What a message may never show: query strings (presigned URLs), keys and secrets.
SECRET = re.compile(r"(\?\S*)|(\b(AKIA|ASIA)[0-9A-Z]{12,})|(Signature=\S+)|(Credential=\S+)")


class RemoteObject:
    """One object: where it is, and what HEAD said of it."""

    __slots__ = ("etag", "key", "modified_ns", "scheme", "size", "storage_class", "store",
                 "url")

    def __init__(self, url: str, scheme: str, store: ObjectStore, key: str,
                 meta: Mapping[str, Any], storage_class: str | None) -> None:
        self.url = url
        self.scheme = scheme
        self.store = store
        self.key = key
        self.size = int(meta["size"])
        self.etag: str | None = meta.get("e_tag")
        modified = meta.get("last_modified")
        #: Last-modified time in nanoseconds since the epoch (0 when the store names none).
        self.modified_ns = int(modified.timestamp()) * 10**9 if modified is not None else 0
        self.storage_class = storage_class


def _scrub(text: str) -> str:
    return SECRET.sub("…", text)


def _problem(exc: Exception) -> str:
    """What went wrong, in words a user can act on, from an obstore or socket error."""
    # obstore's message, less the debug dump of the Rust error that follows it; the dump
    # is read only for the HTTP error's kind (a timeout, a refused connection)
    full = str(exc)
    text = full.split("Debug source:")[0].strip()
    low = RETRY_NOTE.sub("", text.lower())
    kind = HTTP_KIND.search(full)
    if kind is not None:
        low += f" kind {kind.group(1).lower()}"
    if isinstance(exc, NotFoundError) or " 404 " in low or "nosuchbucket" in low \
            or "nosuchkey" in low:
        return RemoteError.NO_SUCH_OBJECT
    if isinstance(exc, UnauthenticatedError) or " 401 " in low \
            or "signaturedoesnotmatch" in low or "invalidaccesskeyid" in low:
        return "no valid credentials (set them as the store's client expects)"
    if isinstance(exc, PermissionDeniedError) or "accessdenied" in low or " 403 " in low:
        return "access denied"
    if "non-partial" in low or "notpartial" in low or ("range" in low and "support" in low):
        return RANGE_IGNORED
    if "timed out" in low or "timeout" in low or "deadline" in low:  # also "kind timeout"
        return "the store did not answer in time"
    if "error sending request" in low or "connect" in low:
        return "cannot reach the store"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return _scrub(first)[:300]


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme, store URL, key)`` of an object URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    key = parts.path.lstrip("/")
    if not parts.netloc:
        raise RemoteError(url, "URL", None, "no bucket or host in the URL")
    if parts.query or parts.fragment:
        raise RemoteError(url, "URL", None, "query strings and fragments are not supported")
    if scheme == "obs":
        return scheme, f"s3://{parts.netloc}", key
    return scheme, f"{scheme}://{parts.netloc}", key


#: The S3 settings taken from the AWS shared files, each with the environment variables
#: that override it and its keys in the files (the AWS CLI's names).
AWS_SHARED = (("region", ("AWS_REGION", "AWS_DEFAULT_REGION"), "region"),
              ("endpoint", ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"), "endpoint_url"))
AWS_KEYS = (("access_key_id", "aws_access_key_id"),
            ("secret_access_key", "aws_secret_access_key"),
            ("session_token", "aws_session_token"))


def _profile_section(path: Path, section: str, url: str) -> Mapping[str, str]:
    """``section`` of the INI file at ``path`` (empty when either is absent)."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        raise RemoteError(url, "AWS shared config", None,
                          f"{path} cannot be read: {type(exc).__name__}") from None
    return dict(parser[section]) if parser.has_section(section) else {}


#: Seconds a credential_process may run (the AWS CLI waits for ever; a hung helper must
#: not hang imgscan).
PROCESS_TIMEOUT = 60
#: Credentials from a process are run for again this long before they expire.
PROCESS_REFRESH = timedelta(minutes=5)
#: ``(profile, command)`` -> (the keys it gave, when they expire or None).
_process_cache: dict[tuple[str, str], tuple[dict[str, str], datetime | None]] = {}


def _process_credentials(url: str, profile: str, command: str) -> dict[str, str]:
    """The keys the profile's ``credential_process`` gives (as ``aws_*`` settings), run
    as the AWS CLI runs it and kept until PROCESS_REFRESH before they expire. Errors name
    the profile and what is wrong, never the output (it holds the secrets)."""
    cached = _process_cache.get((profile, command))
    now = datetime.now(UTC)
    if cached is not None and (cached[1] is None or cached[1] - now > PROCESS_REFRESH):
        return cached[0]

    def failed(problem: str) -> RemoteError:
        return RemoteError(url, "AWS credential_process", None,
                           f"profile {profile!r}: {problem}")

    try:
        done = subprocess.run(shlex.split(command), capture_output=True, check=False,
                              timeout=PROCESS_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise failed(f"the process did not finish in {PROCESS_TIMEOUT} s") from None
    except (OSError, ValueError) as exc:
        raise failed(f"the process cannot be run: "
                     f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    if done.returncode != 0:
        said = _scrub(done.stderr.decode("utf-8", "replace").strip())[:300]
        raise failed(f"the process exited with status {done.returncode}"
                     + (f": {said}" if said else ""))
    try:
        parsed = json.loads(done.stdout)
    except (ValueError, UnicodeDecodeError):
        raise failed("the process's output is not JSON") from None
    if not isinstance(parsed, dict):
        raise failed("the process's output is not a JSON object")
    if parsed.get("Version") != 1:
        raise failed("unsupported Version of the process's output (supported: 1)")
    out: dict[str, str] = {}
    for key, name in (("AccessKeyId", "aws_access_key_id"),
                      ("SecretAccessKey", "aws_secret_access_key"),
                      ("SessionToken", "aws_session_token")):
        value = parsed.get(key)
        if value is None and key == "SessionToken":
            continue
        if not isinstance(value, str) or not value:
            raise failed(f"the process's output has no {key}")
        out[name] = value
    expires = _expiration(parsed.get("Expiration"), failed)
    if expires is not None and expires <= now:
        raise failed(f"the credentials the process gave expired at {expires.isoformat()}")
    _process_cache[(profile, command)] = (out, expires)
    return out


def _expiration(value: object, failed: Callable[[str], RemoteError]) -> datetime | None:
    """A credential_process's ``Expiration`` (ISO 8601) as an aware datetime, or None."""
    if value is None:
        return None
    try:
        expires = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        expires = None
    if expires is None:
        raise failed("the process's Expiration is not an ISO 8601 time")
    return expires if expires.tzinfo is not None else expires.replace(tzinfo=UTC)


#: Settings that make a profile's credentials something object_store cannot make itself:
#: an assumed role (``role_arn`` with ``source_profile`` or ``credential_source``, or a
#: web identity token) and IAM Identity Center sign-in (``sso_session`` or the legacy
#: ``sso_start_url``, from the token ``aws sso login`` cached). botocore resolves them.
DELEGATED = ("role_arn", "sso_session", "sso_start_url")


def _aws_shared(url: str) -> tuple[dict[str, str], str | None]:
    """The S3 settings of the AWS profile that the environment does not set: region and
    endpoint_url from the config file, keys from the credentials file, else from the
    profile's ``credential_process``, else from the config file (the AWS CLI's order);
    with the profile's name when its credentials are botocore's to resolve instead (an
    assumed role or SSO, which the AWS CLI tries before the credentials file)."""
    env = os.environ
    profile = env.get("AWS_PROFILE") or "default"
    home = Path.home()
    config = _profile_section(Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config"),
                              profile if profile == "default" else f"profile {profile}", url)
    out = {key: config[name] for key, variables, name in AWS_SHARED
           if name in config and not any(env.get(v) for v in variables)}
    if env.get("AWS_ACCESS_KEY_ID"):
        return out, None
    if any(name in config for name in DELEGATED):
        return out, profile
    creds = _profile_section(
        Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"),
        profile, url)
    process = creds.get("credential_process") or config.get("credential_process")
    source: Mapping[str, str] = config
    if "aws_access_key_id" in creds:
        source = creds
    elif process:
        source = _process_credentials(url, profile, process)
    out.update((key, source[name]) for key, name in AWS_KEYS if name in source)
    return out, None


#: How long obstore keeps credentials botocore gave before asking again (botocore
#: refreshes an assumed role's or SSO's own credentials before they expire).
PROFILE_REFRESH = timedelta(minutes=5)


class ProfileError(Exception):
    """An AWS profile that cannot give credentials: the message names the profile and
    the problem, never a key or token."""


class ProfileCredentials:
    """obstore's credential provider for an AWS profile that assumes a role or signs in
    with SSO: botocore's resolver (the AWS CLI's own), which calls STS AssumeRole with
    the source profile's keys (or the instance's: ``credential_source``) or the SSO
    portal with the token ``aws sso login`` cached, and refreshes what it got before
    it expires. No request is signed here: obstore signs with the keys handed to it.

    Resolved when made, so that a profile that cannot give keys (STS refuses the role,
    no SSO token cached or it expired) is a :class:`ProfileError` at once, never a
    failure deep in a read.
    """

    def __init__(self, profile: str) -> None:
        self.profile = profile
        try:
            import botocore.session
        except ImportError:
            raise self._failed("its credentials need botocore (pip install "
                               "'imgscan[remote]')") from None
        try:
            self._credentials = botocore.session.Session(profile=profile).get_credentials()
            if self._credentials is None:
                raise self._failed("botocore found no credentials for it")
            self._credentials.get_frozen_credentials()
        except ProfileError:
            raise
        except Exception as exc:
            text = str(exc).strip()
            said = _scrub(text.splitlines()[0])[:300] if text else ""
            raise self._failed(type(exc).__name__ + (f": {said}" if said else "")) from None

    def _failed(self, problem: str) -> ProfileError:
        return ProfileError(f"profile {self.profile!r}: {problem}")

    def __call__(self) -> S3Credential:
        frozen = self._credentials.get_frozen_credentials()
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key,
                "token": frozen.token, "expires_at": datetime.now(UTC) + PROFILE_REFRESH}


def _allow_http() -> bool:
    return os.environ.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true", "yes")


#: The environment variables a store's client reads when it is made (credentials,
#: region, endpoint, options): part of the key under which :func:`_client` keeps it.
CLIENT_ENVIRONMENT = ("AWS_", "GOOGLE_", "AZURE_")


def _store(url: str) -> tuple[str, ObjectStore, str]:
    scheme, base, key = _split(url)
    shared, profile = _aws_shared(url) if scheme in ("s3", "obs") else ({}, None)
    if scheme == "obs" and not (os.environ.get("AWS_ENDPOINT_URL") or "endpoint" in shared):
        raise RemoteError(url, "URL", None, "obs:// needs the OBS endpoint: --endpoint-url, "
                          "AWS_ENDPOINT_URL or endpoint_url in the AWS profile "
                          "(https://obs.REGION.myhuaweicloud.com)")
    # an http:// URL asks for plain HTTP; s3:// and obs:// take AWS_ALLOW_HTTP (client
    # options given here replace the client's own reading of the environment)
    allow_http = scheme == "http" or _allow_http()
    environment = tuple(sorted((k, v) for k, v in os.environ.items()
                               if k.startswith(CLIENT_ENVIRONMENT)))
    try:
        store = _client(base, tuple(sorted(shared.items())), allow_http, environment,
                        profile)
    except ProfileError as exc:
        raise RemoteError(url, "AWS profile", None, str(exc)) from None
    except Exception as exc:
        raise RemoteError(url, "store configuration", None, _problem(exc)) from None
    return scheme, store, key


@functools.lru_cache(maxsize=16)
def _client(base: str, shared: tuple[tuple[str, str], ...], allow_http: bool,
            environment: tuple[tuple[str, str], ...], profile: str | None) -> ObjectStore:
    """The client of the store at ``base``, made once per configuration and process.

    Making one costs more than a round trip to a store on the same network (the
    client loads the system's root certificates, 7 to 40 ms on a shared 2-core
    machine), and its connections stay open for the next object: the images of
    one bucket (a library, a scan's worker) share it. ``environment``, the variables
    the client reads itself when it is made, is only part of the key: a changed
    credential or endpoint makes a new client. ``profile``: the AWS profile whose
    credentials botocore resolves (:class:`ProfileCredentials`), if any.
    """
    del environment
    return from_url(
        base,
        config=cast("S3Config", dict(shared)) if shared else None,
        credential_provider=ProfileCredentials(profile) if profile else None,
        client_options={"timeout": timedelta(seconds=TIMEOUT),
                        "connect_timeout": timedelta(seconds=CONNECT_TIMEOUT),
                        "allow_http": allow_http},
        retry_config={"max_retries": MAX_RETRIES,
                      "backoff": {"init_backoff": timedelta(milliseconds=100),
                                  "max_backoff": timedelta(seconds=2), "base": 2},
                      "retry_timeout": timedelta(seconds=RETRY_TIMEOUT)},
    )


# A forked child (the scan's readers) makes its own clients: a kept one would share
# the parent's open connections and its runtime's threads do not survive the fork.
os.register_at_fork(after_in_child=_client.cache_clear)


def _target(url: str, scheme: str, store: ObjectStore, key: str, method: str) -> str | None:
    """The URL a request made with the standard library goes to: presigned by the
    client for ``method`` (plain for HTTP); None when it cannot be signed."""
    if scheme in ("http", "https"):
        return url
    try:
        target: str = obstore.sign(store, method, key,  # type: ignore[call-overload]
                                   timedelta(minutes=5))
    except Exception:
        return None
    return target


def _head(url: str, scheme: str, store: ObjectStore, key: str) -> dict[str, str] | None:
    """The headers of a HEAD on the object, lower-cased; None when it cannot be signed or
    did not succeed."""
    target = _target(url, scheme, store, key, "HEAD")
    if target is None:
        return None
    try:
        with urllib.request.urlopen(urllib.request.Request(target, method="HEAD"),
                                    timeout=TIMEOUT) as response:
            return {k.lower(): v for k, v in response.headers.items()}
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _meta(headers: Mapping[str, str], size: int | None = None) -> dict[str, Any] | None:
    """obstore's head() metadata from a HEAD's headers (or a ranged GET's, with the
    ``size`` its Content-Range gave); None without a usable size."""
    try:
        if size is None:
            size = int(headers["content-length"])
        if size < 0:    # a hostile server's length: fall back to the client's own HEAD
            return None
        modified = headers.get("last-modified")
        return {"size": size, "e_tag": headers.get("etag"),
                "last_modified": parsedate_to_datetime(modified) if modified else None}
    except (KeyError, ValueError, TypeError):
        return None


def _storage_class(scheme: str, headers: Mapping[str, str]) -> str | None:
    found = next((headers[h] for h in CLASS_HEADERS if h in headers), None)
    return found or DEFAULT_CLASS.get(scheme)


def open_object(url: str) -> RemoteObject:
    """HEAD the object: its size, ETag, last-modified time and storage class (what a
    listing of one HTTP URL needs, and the way in where :func:`open_reading`'s round
    cannot be made).

    One request where it succeeds: the presigned (or plain HTTP) HEAD that shows
    the class headers also carries the rest. Where it cannot be made or fails,
    obstore's own HEAD decides, and its error says why (no such key, access
    denied, ...); the class is then unknown.
    """
    scheme, store, key = _store(url)
    if not key:
        raise RemoteError(url, "URL", None, "no object key in the URL")
    return _opened_by_head(url, scheme, store, key)


def _opened_by_head(url: str, scheme: str, store: ObjectStore, key: str) -> RemoteObject:
    headers = _head(url, scheme, store, key)
    meta = _meta(headers) if headers is not None else None
    storage_class = None
    if meta is None:
        try:
            meta = dict(obstore.head(store, key))
        except Exception as exc:
            raise RemoteError(url, "HEAD", None, _problem(exc)) from None
    elif headers is not None:
        storage_class = _storage_class(scheme, headers)
    return RemoteObject(url, scheme, store, key, meta, storage_class)


class Answer(NamedTuple):
    """One range request's answer: its status, lower-cased headers, and the bytes (at
    most the range's length, whatever the server claims; a 416's error body)."""

    status: int
    headers: dict[str, str]
    data: bytes


def _get_range(target: str, first: int | None, length: int) -> Answer | None:
    """GET ``length`` bytes at ``first`` (a suffix of ``length`` bytes when ``first`` is
    None) from ``target``; None when the request failed (the caller falls back to the
    client's HEAD, whose error says why). A 200, a server that ignored the Range, is
    answered without reading its body."""
    spec = f"bytes=-{length}" if first is None else f"bytes={first}-{first + length - 1}"
    request = urllib.request.Request(target, headers={"Range": spec})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            status = response.status
            data = response.read(length) if status == 206 else b""
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code != 416:
                return None
            # a range past the end: its short error body is read and counted (the store
            # sent it), never more than the range asked for
            return Answer(416, {k.lower(): v for k, v in exc.headers.items()},
                          exc.read(length))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return Answer(status, headers, data)


class Opened(NamedTuple):
    """An object opened by :func:`open_reading`: what the store said of it, the bytes
    its first round fetched (``(offset, bytes)``, none when it was opened by HEAD), and
    the requests that round made with the bytes they returned (counted either way)."""

    object: RemoteObject
    parts: list[tuple[int, bytes]]
    requests: int
    bytes_read: int


def open_reading(url: str, ranges: list[tuple[int, int]], tail: int) -> Opened:
    """Open the object with its first round of range requests, made at once: ``ranges``
    (``(offset, length)``, the object's head first) and its last ``tail`` bytes. Their
    answers give the object's size, ETag, last-modified time and storage class, so no
    HEAD is made: the round trip of opening is that of reading the first bytes.

    A server that answers the head's request with the whole object (200: Range
    ignored) is refused without the body being read. Where a request cannot be
    signed or fails, or an answer is not a 206 or 416 with its Content-Range (a
    server that takes ``FIRST-LAST`` ranges but not a suffix), the object is opened
    by HEAD (:func:`open_object`) and the bytes fetched are dropped: the reader's
    first batch fetches them again.
    """
    scheme, store, key = _store(url)
    if not key:
        raise RemoteError(url, "URL", None, "no object key in the URL")
    target = _target(url, scheme, store, key, "GET")
    if target is None:
        return Opened(_opened_by_head(url, scheme, store, key), [], 0, 0)
    asks: list[tuple[int | None, int]] = [*ranges, (None, tail)]
    with ThreadPoolExecutor(len(asks), thread_name_prefix="imgscan-open") as pool:
        answers = list(pool.map(lambda ask: _get_range(target, *ask), asks))
    if answers[0] is not None and answers[0].status == 200:
        raise RemoteError(url, "range request", 0, RANGE_IGNORED)
    made = sum(a is not None for a in answers)
    got = sum(len(a.data) for a in answers if a is not None)
    parts = _parts(url, asks, answers)
    if parts is None:
        return Opened(_opened_by_head(url, scheme, store, key), [], made, got)
    size, headers, fetched = parts
    meta = _meta(headers, size)
    assert meta is not None     # size is a parsed, non-negative count
    obj = RemoteObject(url, scheme, store, key, meta, _storage_class(scheme, headers))
    return Opened(obj, fetched, made, got)


def _parts(url: str, asks: list[tuple[int | None, int]], answers: list[Answer | None]
           ) -> tuple[int, dict[str, str], list[tuple[int, bytes]]] | None:
    """The object's size, the headers of its first 206 and the bytes fetched; None when
    a request failed or no answer is a 206 (the caller opens by HEAD). Every answer
    must be the range asked for, clipped to one size: anything else is an object that
    changed between the requests or a server that answers wrongly."""
    sizes: set[int] = set()
    headers: dict[str, str] | None = None
    fetched: list[tuple[int, bytes]] = []
    for (first, length), answer in zip(asks, answers, strict=True):
        if answer is None:
            return None
        m = CONTENT_RANGE.match(answer.headers.get("content-range", "").strip())
        if m is None:
            return None
        size = int(m.group(3))
        sizes.add(size)
        if answer.status == 416:
            continue
        got_first, got_last = int(m.group(1) or 0), int(m.group(2) or 0)
        want_first = max(0, size - length) if first is None else first
        want_end = min(want_first + length, size)
        if (got_first, got_last + 1, len(answer.data)) != (want_first, want_end,
                                                            want_end - want_first):
            raise RemoteError(url, "range request", want_first,
                              f"asked for {want_end - want_first} bytes, the store "
                              f"returned {len(answer.data)} at {got_first} (the object "
                              "changed while being read?)")
        headers = headers or answer.headers
        fetched.append((want_first, answer.data))
    if headers is None:
        return None
    if len(sizes) != 1:
        raise RemoteError(url, "range request", 0, "the object's size changed between "
                          "requests (the object changed while being read?)")
    return sizes.pop(), headers, fetched


def fetch(obj: RemoteObject, start: int, end: int) -> bytes:
    """The object's bytes ``[start, end)``, by one range request; exactly that many."""
    try:
        data = bytes(obstore.get_range(obj.store, obj.key, start=start, end=end))
    except Exception as exc:
        raise RemoteError(obj.url, "range request", start, _problem(exc)) from None
    if len(data) != end - start:
        raise RemoteError(obj.url, "range request", start,
                          f"asked for {end - start} bytes, the store returned {len(data)} "
                          "(the object changed while being read?)")
    return data


def list_objects(url: str) -> Iterator[RemoteObject]:
    """The objects under a ``scheme://bucket/prefix/`` URL, page by page as the store
    lists them (never the whole listing in memory); storage classes are not looked up."""
    scheme, store, prefix = _store(url)
    root = url[: len(url) - len(prefix)] if prefix else url.rstrip("/") + "/"
    try:
        for page in obstore.list(store, prefix or None, chunk_size=1000):
            for meta in page:
                yield RemoteObject(root + meta["path"], scheme, store, meta["path"], meta,
                                   None)
    except RemoteError:
        raise
    except Exception as exc:
        raise RemoteError(url, "listing", None, _problem(exc)) from None
