"""Which image files an index may serve: only the ones its rows list, never a folder's contents.

``index`` records an image root (the thumbnails ``embed`` exported, or the deepest folder holding
every image the records name) and each row's path under it (``image_rel``). ``serve`` answers
``GET /images/{image_rel}`` only for a path some row lists, and only with that row's file after
resolving symlinks inside the root: a file that merely sits under the root (the index itself,
``.env``, another user's photos) is a plain 404.

A root that would expose the file system is refused at index and at serve time
(:func:`check_image_root`): a file-system root (``/``, ``C:\\``), the home folder or any folder
above it (``/home``, ``/Users``), or a top-level folder (``/tmp``, ``/var``, ``/data``). Images in
several such trees (``/data/a/x.jpg`` and ``/srv/b/y.jpg``, whose common folder is ``/``) are
listed by row instead (:data:`BY_ROW`): ``image_rel = "{row}/{file name}"``, served from the
row's own path, so no folder is ever "the root".
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
BY_ROW = "by-row"  # index_info["image_files"]: rows name their own absolute files


def exposure(root: Path) -> str | None:
    """Why serving ``root`` would expose the file system, or None when it is a data folder."""
    root = Path(os.path.abspath(root))
    home = Path(os.path.expanduser("~")).resolve()
    if root == Path(root.anchor):
        return "it is the file-system root"
    if root == home or root in home.parents:
        return "it holds the home folder"
    if len(root.parts) <= 2:
        return "it is a top-level system folder"
    return None


def check_image_root(root: Path) -> Path:
    """``root`` resolved, or ValueError naming it when serving it would expose the file system."""
    resolved = Path(root).resolve()
    reason = exposure(resolved)
    if reason:
        raise ValueError(
            f"image root {resolved} would expose the file system ({reason}); give "
            "`clipforge index --image-root` the folder that holds the images, or "
            "rebuild the index (images in several trees are then served by row)"
        )
    return resolved


def common_image_root(paths: list[str]) -> tuple[Path | None, list[str]]:
    """(root, each path under it) for absolute image ``paths``; root None when their common folder
    would expose the file system (then each row is listed as ``"{row}/{file name}"``)."""
    files = [p for p in paths if p and Path(p).is_absolute()]
    if not files:
        return None, ["" for _ in paths]
    root = Path(os.path.commonpath([str(Path(p).parent) for p in files]))
    if exposure(root) is None:
        return root, [
            os.path.relpath(p, root) if p and Path(p).is_absolute() else "" for p in paths
        ]
    return None, [
        f"{row}/{Path(p).name}" if p and Path(p).is_absolute() else ""
        for row, p in enumerate(paths)
    ]


class ImageFiles:
    """``image_rel`` → the file to send, for the rows of one index (see the module doc).

    Lookup is by a sorted array of the paths' hashes (16 bytes a row, ~0.3 s to build for 1M
    rows) plus a check of the row's own path, so no dict of a million strings is kept.
    """

    def __init__(
        self, image_rel: pa.Array, image_paths: pa.Array | None, root: Path | None, by_row: bool
    ):
        if root is not None:
            root = check_image_root(root)
        self.root, self.by_row = root, by_row
        self._rel, self._paths = image_rel, image_paths
        hashes = np.fromiter(
            (hash(r) if r else 0 for r in image_rel.to_pylist()), np.int64, count=len(image_rel)
        )
        self._order = np.argsort(hashes, kind="stable")
        self._sorted = hashes[self._order]

    @property
    def available(self) -> bool:
        return self.root is not None or self.by_row

    def row_of(self, relative: str) -> int | None:
        """The row that lists ``relative``, or None."""
        if not relative:
            return None
        key = hash(relative)
        start = int(np.searchsorted(self._sorted, key, side="left"))
        for position in range(start, len(self._sorted)):
            if self._sorted[position] != key:
                break
            row = int(self._order[position])
            if self._rel[row].as_py() == relative:
                return row
        return None

    def file(self, relative: str) -> Path | None:
        """The file behind ``/images/{relative}``, or None (unlisted, gone, escaping, not an
        image): callers answer a plain 404 that never says which."""
        if not self.available or "\x00" in relative or "\\" in relative:
            return None
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts:
            return None
        row = self.row_of(relative)
        if row is None:
            return None
        if self.by_row:
            path = self._paths[row].as_py() if self._paths is not None else None
            candidate = Path(path).resolve() if path else None
        else:
            root = self.root
            assert root is not None  # `available` above: a root, or paths by row
            candidate = (root / pure).resolve()
            if not candidate.is_relative_to(root):
                return None
        if candidate is None or candidate.suffix.lower() not in IMAGE_SUFFIXES:
            return None
        return candidate if candidate.is_file() else None
