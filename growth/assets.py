"""Static assets: content-hashed URLs cached for a year, compressed once (zstd, brotli, gzip) by Flask-Compress.

Every URL the app builds for an asset (`url_for('static', filename='app.css')`, Bootstrap-Flask's
files, Plotly, the Swagger UI files) carries a hash of the file's content: `app.css` becomes
`app.3f2a9c01d4e7.css`. Such a URL never changes meaning, so it is served with
`Cache-Control: public, max-age=31536000, immutable`; the plain name, or a hash that is not the
current one (a page from before an upgrade), still serves the current file, with a short lifetime.

Compression is negotiated by Flask-Compress for these responses only (pages and API answers are
left alone: they carry CSRF tokens and personal data, the material of compression side channels).
Each file is compressed once per encoding and kept in the instance folder, so Plotly's 4.8 MB are
not squeezed again on every request or start.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Request, g
from flask.wrappers import Response
from flask_compress import Compress
from werkzeug.security import safe_join

HASH_LENGTH = 12
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"  # a plain or outdated asset URL: fine for minutes, then revalidated by ETag
_FINGERPRINTED = re.compile(rf"^(?P<stem>.+)\.(?P<hash>[0-9a-f]{{{HASH_LENGTH}}})(?P<ext>\.[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class AssetSource:
    """Where the files of one asset endpoint are: a folder (the route takes `filename`) or one file."""

    folder: Path | None = None
    file: Path | None = None

    def resolve(self, filename: str | None) -> Path | None:
        """Return the file a request names, or None when there is none (the view then answers 404)."""
        if self.file is not None:
            return self.file
        if self.folder is None or not filename:
            return None
        joined = safe_join(str(self.folder), filename)
        return Path(joined) if joined and os.path.isfile(joined) else None


_digests: dict[tuple[str, int, int], str] = {}


def digest(path: Path) -> str:
    """Return the content hash of a file (cached while its size and modification time stay the same)."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    value = _digests.get(key)
    if value is None:
        value = hashlib.sha256(path.read_bytes()).hexdigest()[:HASH_LENGTH]
        _digests[key] = value
    return value


def fingerprinted(filename: str, fingerprint: str) -> str:
    """Return `filename` with the hash before its extension: css/app.css → css/app.<hash>.css."""
    head, dot, ext = filename.rpartition(".")
    if not dot or "/" in ext or not head or head.endswith("/"):
        return filename  # no extension: leave the name alone (served with the short lifetime)
    return f"{head}.{fingerprint}.{ext}"


def sources(app: Flask) -> dict[str, AssetSource]:
    """Return the app's asset endpoints (register more with `register_asset`)."""
    return app.extensions.setdefault("growth.assets", {})


def register_asset(app: Flask, endpoint: str, *, folder: str | Path | None = None,
                   file: str | Path | None = None) -> None:
    """Serve an endpoint's responses as assets: fingerprinted URLs, cache headers, compression.

    A folder endpoint takes `filename`; a one-file endpoint needs a second rule with `<fingerprint>`
    in it (e.g. `/assets/plotly.min.<fingerprint>.js`), which the app fills in and strips again.
    """
    sources(app)[endpoint] = AssetSource(Path(folder) if folder else None, Path(file) if file else None)


class CompressedAssetCache:
    """Flask-Compress's cache: compressed bodies kept as files under the instance folder, keyed by content."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except OSError:
            return None

    def set(self, key: str, value: bytes) -> None:
        path = self._path(key)
        if path.exists():  # Flask-Compress sets after every hit too; the content is the same
            return
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(value)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only instance folder: compress again next time


def _cache_key(app: Flask) -> Callable[[Request], str]:
    def key(_request: Request) -> str:
        levels = ",".join(str(app.config[k]) for k in ("COMPRESS_LEVEL", "COMPRESS_BR_LEVEL", "COMPRESS_ZSTD_LEVEL"))
        return f"{g.asset_digest};{levels}"

    return key


def init_assets(app: Flask) -> None:
    """Fingerprint asset URLs, and give asset responses their cache headers and compression."""
    app.config.setdefault("COMPRESS_REGISTER", False)  # assets only; see the module docstring
    app.config.setdefault("COMPRESS_ALGORITHM", ["zstd", "br", "gzip"])
    app.config.setdefault("COMPRESS_CACHE_KEY", _cache_key(app))
    cache = CompressedAssetCache(Path(app.instance_path) / "compressed-assets")
    app.config.setdefault("COMPRESS_CACHE_BACKEND", lambda: cache)
    compress = Compress(app)
    app.extensions["growth.compress"] = compress
    if app.static_folder:
        register_asset(app, "static", folder=app.static_folder)

    @app.url_defaults
    def _fingerprint(endpoint: str, values: dict[str, Any]) -> None:
        source = sources(app).get(endpoint)
        if source is None:
            return
        if source.file is not None:
            values.setdefault("fingerprint", digest(source.file))
            return
        filename = values.get("filename")
        path = source.resolve(filename)
        if path is not None and filename is not None:
            values["filename"] = fingerprinted(filename, digest(path))

    @app.url_value_preprocessor
    def _strip_fingerprint(endpoint: str | None, values: dict[str, Any] | None) -> None:
        source = sources(app).get(endpoint or "")
        if source is None or values is None:
            return
        if source.file is not None:
            given = values.pop("fingerprint", None)
            path: Path | None = source.file
        else:
            given = None
            filename = values.get("filename")
            path = source.resolve(filename)
            match = _FINGERPRINTED.match(filename or "") if path is None else None
            if match is not None:
                path = source.resolve(match["stem"] + match["ext"])
                if path is not None:
                    values["filename"] = match["stem"] + match["ext"]
                    given = match["hash"]
        if path is not None:
            g.asset_digest = digest(path)
            g.asset_immutable = given is not None and given == g.asset_digest

    @app.after_request
    def _asset_response(response: Response) -> Response:
        if g.get("asset_digest") is None or response.status_code not in (200, 304):
            return response
        response.headers["Cache-Control"] = IMMUTABLE if g.asset_immutable else SHORT
        response.headers.pop("Expires", None)
        if response.status_code == 200:
            if response.is_streamed:  # send_file's file wrapper: read it so the compressed copy can be cached
                response.direct_passthrough = False
                response.make_sequence()
            response = compress.after_request(response)
        return response
