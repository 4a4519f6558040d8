"""Archive targets: fsspec file systems opened from URLs (file, s3, gs, az).

Back-ends are imported lazily, only when a URL needs them, with an error that
names the extra to install. A target is opened only when the configuration
allows it, and credentials and endpoints come from configuration
(:mod:`.access`), never from the URL or the database. File systems are
created on first use in the process that uses them (fsspec's async file
systems are not fork-safe) and cached per process.

Every write goes to a temporary name, is read back and checked against its
SHA-256, and only then moved to its final name: an upload that dies half-way
never leaves a truncated object under a name a reader trusts. On local disks
the folders evstore creates are 0700 and its files 0600: archives hold
personal data.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

from ..config_file import protocol_of
from ..errors import ArchiveIntegrityError, ArchiveTargetError, ConfigurationError
from .access import check_allowed, storage_options
from .segments import sha256

# protocol -> (module that implements it, evstore extra that installs it)
BACKENDS: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
}
LOCAL = ("file", "local")
_cache: dict[tuple[int, str, str], Any] = {}
_cache_lock = threading.Lock()


def check_backend(url: str) -> str:
    """The URL's protocol, or ConfigurationError naming the extra to install."""
    protocol = protocol_of(url)
    if protocol in LOCAL:
        return "file"
    if protocol not in BACKENDS:
        known = ", ".join(["file", *sorted(BACKENDS)])
        raise ConfigurationError(f"unsupported archive target {url!r}: use one of {known}")
    module, extra = BACKENDS[protocol]
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(
            f"archive target {url!r} needs the {module} package: pip install 'evstore[{extra}]'"
        )
    return protocol


def _prepare_environment(protocol: str) -> None:
    if protocol in ("gs", "gcs"):
        # Otherwise every gcsfs call first waits ~60 s on a gRPC probe.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    if protocol in ("s3", "s3a"):
        # botocore >= 1.36 sends CRC32 headers that S3-compatible stores reject.
        os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "WHEN_REQUIRED")
        os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "WHEN_REQUIRED")


def _endpoint(options: dict[str, Any]) -> str | None:
    for key in ("endpoint_url", "account_host"):
        if options.get(key):
            return str(options[key])
    client = options.get("client_kwargs") or {}
    if client.get("endpoint_url"):
        return str(client["endpoint_url"])
    conn = options.get("connection_string") or ""
    for part in str(conn).split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "blobendpoint":
            return value.strip()
    return None


def probe_endpoint(url: str, options: dict[str, Any], timeout: float = 3.0) -> None:
    """Fail fast when an explicitly configured endpoint does not accept connections.

    adlfs (and botocore) retry for minutes against a closed port; one TCP
    connect tells the operator at once.
    """
    endpoint = _endpoint(options)
    if not endpoint:
        return
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            pass
    except OSError as exc:
        raise ArchiveTargetError(
            f"archive target {url!r}: endpoint {endpoint} is unreachable ({exc})"
        ) from exc


def _private_folders(folder: str) -> None:
    """Create ``folder`` and its missing parents, each 0700 (whatever the umask)."""
    missing = []
    path = os.path.abspath(folder)
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # made by a concurrent upload: it set the mode
        os.chmod(path, 0o700)


def _private_file(path: str) -> None:
    """An empty 0600 file at ``path``, so the bytes written next are never readable by others."""
    _private_folders(os.path.dirname(path))
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(path, 0o600)


class ArchiveTarget:
    """A folder of an fsspec file system, named by a URL the configuration allows."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.protocol = check_backend(url)
        check_allowed(url)
        self.options = dict(storage_options(url) if options is None else options)
        self._fs: Any = None
        self.root = ""

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs, self.root = self._open()
        return self._fs

    def _open(self) -> tuple[Any, str]:
        import fsspec

        _prepare_environment(self.protocol)
        probe_endpoint(self.url, self.options)
        options = dict(self.options)
        if self.protocol == "file":
            options.setdefault("auto_mkdir", True)
        key = (os.getpid(), self.url, repr(sorted(options.items())))
        try:
            with _cache_lock:
                if key not in _cache:
                    _cache[key] = fsspec.core.url_to_fs(self.url, **options)
                fs, root = _cache[key]
        except (ImportError, ConfigurationError):
            raise
        except Exception as exc:
            raise ArchiveTargetError(f"cannot open archive target {self.url!r}: {exc}") from exc
        return fs, str(root).rstrip("/")

    def path(self, relative: str) -> str:
        _ = self.fs
        relative = relative.strip("/")
        return f"{self.root}/{relative}" if relative else self.root

    def url_of(self, relative: str) -> str:
        relative = relative.strip("/")
        return f"{self.url}/{relative}" if relative else self.url

    def _call(self, what: str, relative: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except FileNotFoundError:
            raise
        except (ArchiveIntegrityError, ArchiveTargetError, ConfigurationError):
            raise
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArchiveTargetError(
                f"archive target {self.url!r}: cannot {what} {relative!r}: {detail}"
            ) from exc

    def read(self, relative: str) -> bytes:
        path = self.path(relative)
        data = self._call("read", relative, self.fs.cat_file, path)
        return bytes(data)

    def exists(self, relative: str) -> bool:
        return bool(self._call("check", relative, self.fs.exists, self.path(relative)))

    def size(self, relative: str) -> int | None:
        try:
            info = self._call("inspect", relative, self.fs.info, self.path(relative))
        except FileNotFoundError:
            return None
        return int(info.get("size") or 0)

    def find(self, relative: str, suffix: str) -> list[str]:
        """Relative paths under ``relative`` whose names end with ``suffix``, sorted."""
        base = self.path(relative)
        try:
            found = self._call("list", relative, self.fs.find, base)
        except FileNotFoundError:
            return []
        root = self.path("")
        out = []
        for p in found:
            p = str(p)
            if p.endswith(suffix) and ".tmp-" not in p:
                out.append(p[len(root):].lstrip("/") if p.startswith(root) else p)
        return sorted(out)

    def remove(self, relative: str) -> None:
        try:
            self._call("delete", relative, self.fs.rm_file, self.path(relative))
        except FileNotFoundError:
            pass

    def _pipe(self, path: str, data: bytes) -> None:
        if self.protocol == "file":
            _private_file(path)
        if self.protocol in ("gs", "gcs"):
            # One resumable upload of a single (final) chunk rather than a
            # multipart one: gcp-storage-emulator's multipart parser drops a
            # trailing CR byte (the read-back check caught it). One more
            # request per object on real GCS, same bytes.
            self.fs.pipe_file(path, data, chunksize=max(len(data), 1))
            return
        self.fs.pipe_file(path, data)

    def _publish(self, tmp: str, relative: str) -> None:
        """Move the checked temporary object to its final name.

        A rename on local disks; a server-side copy then a delete on object
        stores (gcsfs's move API is not in every GCS implementation, and its
        fallback retries for seconds first).
        """
        if self.protocol == "file":
            self._call("publish", relative, self.fs.mv, self.path(tmp), self.path(relative))
            return
        self._call("publish", relative, self.fs.copy, self.path(tmp), self.path(relative))
        self.remove(tmp)

    def write_verified(self, relative: str, data: bytes) -> str:
        """Write ``data`` under a temporary name, read it back, check it, publish it.

        Returns the SHA-256. Raises ArchiveIntegrityError when the read-back
        differs (nothing is published) and ArchiveTargetError when the target
        fails; a leftover temporary object is removed on a best-effort basis.
        """
        expected = sha256(data)
        # Fail in a second, not after minutes of client retries, when a
        # configured endpoint is down.
        probe_endpoint(self.url, self.options)
        tmp = f"{relative}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            self._call("write", tmp, self._pipe, self.path(tmp), data)
            back = self.read(tmp)
            if sha256(back) != expected:
                raise ArchiveIntegrityError(
                    f"archive target {self.url!r}: {relative!r} read back {len(back)} bytes with "
                    f"SHA-256 {sha256(back)[:16]}…, expected {len(data)} bytes {expected[:16]}…"
                )
            self._publish(tmp, relative)
        except BaseException:
            try:
                self.remove(tmp)
            except Exception:  # the target may be down: the leftover is harmless
                pass
            raise
        published = self.size(relative)
        if published != len(data):
            raise ArchiveIntegrityError(
                f"archive target {self.url!r}: {relative!r} has {published} bytes after "
                f"publishing, expected {len(data)}"
            )
        return expected
