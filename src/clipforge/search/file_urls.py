"""``image_url`` on ``/knn-service``: local ``file://`` URLs under allowed folders, nothing else.

clip-retrieval's back downloads any ``image_url`` it is given, which lets anyone who can reach
the server make it fetch from the network (server-side request forgery) or probe it. clipforge
reads only ``file://`` URLs, and only files under the folders given to ``serve
--image-url-folder`` (none by default: every ``image_url`` is then refused):

- another scheme (``http://``, ``https://``, ``ftp://``…) or a remote host → 400;
- a ``..`` segment anywhere in the path → 400, even when it would resolve inside a folder;
- a path that, symlinks resolved, is not under an allowed folder → 403 (the answer never says
  whether such a file exists);
- a missing file under an allowed folder → 404; larger than the upload limit → 413.

An allowed folder that would expose the file system (``/``, the home folder, a top-level
folder) is refused when the server starts, as image roots are (:func:`.images.check_image_root`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from .images import exposure
from .service import QueryError


def allowed_folders(folders) -> tuple[Path, ...]:
    """The folders resolved; ValueError / FileNotFoundError naming a bad one."""
    checked = []
    for folder in folders:
        resolved = Path(folder).expanduser().resolve()
        if not resolved.is_dir():
            raise FileNotFoundError(f"--image-url-folder {folder}: no such folder")
        if reason := exposure(resolved):
            raise ValueError(
                f"--image-url-folder {folder} would expose the file system ({reason}); "
                "give the folder that holds the query images"
            )
        checked.append(resolved)
    return tuple(checked)


class FileUrls:
    """Reads the files ``image_url`` may name (module doc)."""

    def __init__(self, folders: tuple[Path, ...], max_bytes: int):
        self.folders, self.max_bytes = folders, max_bytes

    def path(self, url: str) -> Path:
        """The file ``url`` names, or QueryError (400 / 403 / 404) saying why not."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "file":
            raise QueryError(
                400,
                "image_url: only file:// URLs are read (this server fetches nothing from the "
                "network); send the image itself, base64, in image",
            )
        if parts.netloc not in ("", "localhost"):
            raise QueryError(400, "image_url: a file:// URL must name a local file, not a host")
        raw = unquote(parts.path)
        if "\x00" in raw or ".." in PurePosixPath(raw).parts:
            raise QueryError(400, "image_url: a path with '..' segments is not read")
        if not self.folders:
            raise QueryError(
                403,
                "image_url: this server reads no files (serve --image-url-folder DIR allows one)",
            )
        candidate = Path(raw)
        resolved = candidate.resolve() if candidate.is_absolute() else None
        if resolved is None or not any(resolved.is_relative_to(f) for f in self.folders):
            raise QueryError(403, "image_url: not under a folder this server may read")
        if not resolved.is_file():
            raise QueryError(404, "image_url: no such file")
        return resolved

    def read(self, url: str) -> bytes:
        """The file's bytes (413 past the upload limit); called off the event loop."""
        path = self.path(url)
        with open(path, "rb") as handle:
            data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise QueryError(413, f"image_url: file over the limit of {self.max_bytes} bytes")
        return data
