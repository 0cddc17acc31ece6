"""Downloads into the cache folder: checked by sha256, renamed into place, reused offline.

`fetch(url, path, sha256_prefix)` downloads `url` to a temporary name beside `path`
with a progress bar, hashes it while it arrives, checks the length the server
announced and the sha256 prefix the publisher gave (MMSegmentation names its files
`NAME-<first 8 hex digits of the sha256>.pth`), then renames it to `path`. A file
already at `path` is hashed again and used without the network. Whatever goes wrong
(no network, an HTTP error, a connection closed halfway, another hash) is one
`InputError` naming the URL, the reason, and the path where a file downloaded
elsewhere can be put; no partial file is left behind.

Written on `urllib.request` rather than `keras.utils.get_file`: `get_file` checks a
whole hash only (publishers give a prefix), writes to the final name while it
downloads, and keeps its files under `~/.keras`, apart from our cache.

Example:

    path = fetch(
        "https://download.openmmlab.com/.../pidnet-s_imagenet1k_20230306-715e6273.pth",
        cache_dir() / "weights" / "pidnet-s_imagenet1k_20230306-715e6273.pth",
        sha256_prefix="715e6273",
    )
"""

import hashlib
import http.client
import os
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from semseg.base.errors import InputError

CACHE_VARIABLE = "SEMSEG_CACHE"
CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 30


def cache_dir():
    """The cache folder: `$SEMSEG_CACHE`, else `~/.cache/semseg` (`$XDG_CACHE_HOME` honoured)."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "semseg"


def file_sha256(path):
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url, path, sha256_prefix, progress=True):
    """The file `url` at `path`: the cached copy if present and right, else downloaded.

    Args:
        url: `http://` or `https://` URL.
        path: where the file lives in the cache.
        sha256_prefix: leading hex digits of the file's sha256 (any length, up to 64).
        progress: show a progress bar on stderr while downloading.

    Returns:
        `Path` of the checked file.

    Raises:
        InputError: for a cached file or a download whose hash differs, and for any
            failed download (offline, HTTP error, truncated transfer), naming the URL,
            the reason and `path`.
    """
    path = Path(path)
    prefix = sha256_prefix.lower()
    if path.is_file():
        digest = file_sha256(path)
        if not digest.startswith(prefix):
            raise InputError(
                f"{path}: cached file has sha256 {digest[:16]}..., the publisher's starts with "
                f"{prefix}; delete it to download {url} again"
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
    )
    try:
        with temp:
            digest = _download(url, temp, progress)
        if not digest.startswith(prefix):
            raise _Failure(
                f"the download has sha256 {digest[:16]}..., the publisher's starts with {prefix}"
            )
        os.replace(temp.name, path)
    except _Failure as failure:
        raise InputError(
            f"{url}: {failure}; nothing was kept. Download it elsewhere and put it at {path}"
        ) from None
    finally:
        if os.path.exists(temp.name):
            os.unlink(temp.name)
    return path


class _Failure(Exception):
    """Why a download failed, in words."""


def _download(url, stream, progress):
    """Streams `url` into `stream`; returns its hex sha256. Raises `_Failure`."""
    import tqdm

    digest = hashlib.sha256()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "semseg"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm.tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=url.rsplit("/", 1)[-1],
                disable=not progress,
                leave=False,
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    stream.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise _Failure(f"HTTP error {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _Failure(f"cannot connect ({error.reason}: offline?)") from None
    except http.client.IncompleteRead as error:
        raise _Failure(
            f"the connection closed after {received + len(error.partial):,} bytes"
            + (f" of {expected:,}" if expected else "")
        ) from None
    except (http.client.HTTPException, socket.timeout, ConnectionError) as error:
        raise _Failure(f"the transfer failed after {received:,} bytes ({error})") from None
    if expected is not None and received != expected:
        raise _Failure(f"the connection closed after {received:,} of {expected:,} bytes")
    return digest.hexdigest()
