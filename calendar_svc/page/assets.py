"""The page's static files (stylesheet, script, icon), served under content-hashed names.

Each file in ``calendar_svc/page/static`` is served at
``/static/<stem>.<hash>.<suffix>`` (``page.3f2a1b4c5d6e.css``), the hash being
the first 12 hex digits of the SHA-256 of its bytes: a name never changes its
content, so browsers may keep it for a year (``immutable``), and a new release
gets new names. Nothing is loaded from another host. Read once, when the app
is built.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import PurePosixPath

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    """One static file: its name in the package, its served name, bytes and type."""

    name: str  # page.css
    served_name: str  # page.3f2a1b4c5d6e.css
    body: bytes
    content_type: str
    etag: str  # quoted


class Assets:
    """The static files by served name, and the served name of each file."""

    def __init__(self, contents: dict[str, bytes]):
        self._by_name: dict[str, Asset] = {}
        self._served: dict[str, Asset] = {}
        for name, body in sorted(contents.items()):
            path = PurePosixPath(name)
            content_type = _TYPES.get(path.suffix)
            if content_type is None:
                raise ValueError(f"no content type for static file {name!r}")
            digest = hashlib.sha256(body).hexdigest()[:12]
            asset = Asset(
                name=name,
                served_name=f"{path.stem}.{digest}{path.suffix}",
                body=body,
                content_type=content_type,
                etag=f'"{digest}"',
            )
            self._by_name[name] = asset
            self._served[asset.served_name] = asset

    @classmethod
    def load(cls) -> Assets:
        """The files shipped in the package's ``static`` folder."""
        folder = files("calendar_svc.page") / "static"
        return cls(
            {
                item.name: item.read_bytes()
                for item in folder.iterdir()
                if item.is_file() and item.name[:1] not in (".", "_")
            }
        )

    def served_name(self, name: str) -> str:
        """``page.css`` -> ``page.3f2a1b4c5d6e.css`` (KeyError for a file that is not there)."""
        return self._by_name[name].served_name

    def find(self, served_name: str) -> Asset | None:
        return self._served.get(served_name)
