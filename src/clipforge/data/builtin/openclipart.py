"""``builtin:openclipart``: ~6,900 public-domain drawings from Debian's ``openclipart-png``.

Open Clip Art Library 0.18 (public domain, Creative Commons PD dedication) as Debian packages it:
PNG files under ``/usr/share/openclipart/png/<category>/…``, 162 MB — too big to ship, so it is
read where Debian installs it. Opening the source never installs anything: when the folder is
missing the error says to run ``clipforge data prepare openclipart``, which (as root, with
``apt-get``) installs the package and builds the index below — an explicit step, not a side
effect of reading data.

**Records.** One per distinct file: 1,221 of the 8,121 paths are symbolic links filing the same
drawing under a second folder; they add a caption ("…, science / astronomy") instead of a
duplicate image. Left out: drawings over 16 megapixels (17, up to 20,990 × 29,700 px — seconds
and gigabytes to decode) and drawings with a side under 16 px (10): 6,873 remain. Captions come
from the file name and folder, see :mod:`.openclipart_names`. Images are shrunk to at most
``max_side`` pixels when a record is read (in the loader's workers), so listing stays fast and
memory stays small.

**Index.** Walking the tree, reading PNG headers and learning author names takes ~2 s, so the
listing is kept as Parquet in ``$CLIPFORGE_CACHE`` (default ``~/.cache/clipforge``), rebuilt when
the set of files changes. Opening from the cache takes well under a second.

**Split and classes.** Fixed by file (:func:`.splits.choose_val_units`, ~15 % of every folder in
``val``); the zero-shot classes are the 22 top-level folders ("signs_and_symbols" → "signs and
symbols"), the same list for every split; ``metadata["label"]`` indexes it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tqdm.auto import tqdm

from ..record import BadRecordError, RawRecord, open_image
from ..sources.base import MapSource
from .openclipart_names import clipart_captions, learn_authors, readable_category, title_from_stem
from .splits import check_split, choose_val_units

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
DEBIAN_PACKAGE = "openclipart-png"
INDEX_VERSION = "1"  # bump when titles, captions or the split rule change
MAX_PIXELS = 16_000_000
MIN_SIDE = 16


def cache_dir() -> Path:
    return Path(os.environ.get("CLIPFORGE_CACHE") or Path.home() / ".cache" / "clipforge")


PREPARE_COMMAND = "clipforge data prepare openclipart"


def find_images(root: Path = OPENCLIPART_ROOT) -> Path:
    """The image folder; when missing, an error saying which command prepares it."""
    if root.is_dir():
        return root
    raise FileNotFoundError(
        f"openclipart images not found at {root}; run `{PREPARE_COMMAND}` first (it installs "
        f"the Debian/Ubuntu package {DEBIAN_PACKAGE}, about 160 MB, as root), or "
        f"`sudo apt-get install {DEBIAN_PACKAGE}` yourself"
    )


def install_debian_package(root: Path = OPENCLIPART_ROOT, install: bool = True) -> Path:
    """Install ``openclipart-png`` with ``apt-get`` when ``root`` (the Debian location) is
    missing and we are root; only :func:`prepare` calls this, on the user's command."""
    if root.is_dir():
        return root
    can_install = (
        install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
    )
    if can_install and root == OPENCLIPART_ROOT:
        command = ["apt-get", "install", "-y", DEBIAN_PACKAGE]
        print(f"{root} is missing; running: {' '.join(command)}", flush=True)
        result = subprocess.run(
            command, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, check=False
        )
        if result.returncode == 0 and root.is_dir():
            return root
    raise FileNotFoundError(
        f"openclipart images not found at {root}; install the Debian/Ubuntu package "
        f"{DEBIAN_PACKAGE} (about 160 MB): `sudo apt-get install {DEBIAN_PACKAGE}`"
    )


def list_files(root: Path) -> list[str]:
    """Every ``.png`` path under ``root``, relative, sorted (links included)."""
    found = []
    for folder, _, names in os.walk(root):
        found += [
            os.path.relpath(os.path.join(folder, name), root)
            for name in names
            if name.lower().endswith(".png")
        ]
    return sorted(found)


def build_index(root: Path, paths: list[str], progress: bool = False) -> pa.Table:
    """One row per distinct drawing: folders, title, captions, size, split, top category;
    ``progress``: a bar on stderr over the image headers read."""
    folders_of: dict[str, list[str]] = {}
    resolved_root = os.path.realpath(root)
    for path in paths:
        real = path
        if (root / path).is_symlink():  # a second folder for a drawing filed elsewhere
            real = os.path.relpath(os.path.realpath(root / path), resolved_root)
        if real.startswith("..") or not (root / real).is_file():
            continue
        folders_of.setdefault(real, [os.path.dirname(real)])
        if path != real and os.path.dirname(path) not in folders_of[real]:
            folders_of[real].append(os.path.dirname(path))
    sizes = {
        key: _image_size(root / key)
        for key in tqdm(folders_of, desc="openclipart index", unit="img", disable=not progress)
    }
    keys = [
        key
        for key, (width, height) in sizes.items()
        if min(width, height) >= MIN_SIDE and width * height <= MAX_PIXELS
    ]
    authors = learn_authors(Path(key).stem for key in folders_of)
    val = choose_val_units((key, os.path.dirname(key)) for key in keys)
    titles = [title_from_stem(Path(key).stem, authors) for key in keys]
    return pa.table(
        {
            "key": keys,
            "category": [key.split("/")[0] for key in keys],
            "folders": [folders_of[key] for key in keys],
            "title": titles,
            "captions": [
                list(clipart_captions(title, folders_of[key])) for key, title in zip(keys, titles)
            ],
            "width": [sizes[key][0] for key in keys],
            "height": [sizes[key][1] for key in keys],
            "split": ["val" if key in val else "train" for key in keys],
        }
    )


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header; (0, 0) when unreadable or a decompression bomb."""
    try:
        with open_image(path, str(path)) as image:  # reads the header only
            return image.size
    except BadRecordError:
        return (0, 0)


def load_index(root: Path, progress: bool = False) -> pa.Table:
    """The index from the cache when it matches the files on disk, else built and cached."""
    paths = list_files(root)
    fingerprint = hashlib.sha256("\n".join([str(root), INDEX_VERSION, *paths]).encode()).hexdigest()
    cached = cache_dir() / f"openclipart-index-v{INDEX_VERSION}.parquet"
    if cached.exists():
        try:
            table = pq.read_table(cached)
            if (table.schema.metadata or {}).get(b"clipforge.fingerprint") == fingerprint.encode():
                return table
        except (OSError, pa.ArrowInvalid):
            pass  # unreadable cache: rebuild it
    table = build_index(root, paths, progress).replace_schema_metadata(
        {"clipforge.fingerprint": fingerprint}
    )
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        pq.write_table(table, partial)
        partial.replace(cached)
    except OSError:
        pass  # a read-only home only costs the rebuild
    return table


class OpenClipartSource(MapSource):
    """The Debian Open Clip Art PNGs, one split; images shrink to ``max_side`` when read."""

    name = "openclipart"

    def __init__(
        self, split: str = "train", root: str | Path = OPENCLIPART_ROOT, max_side: int = 256
    ):
        check_split(split, "openclipart")
        self.root = find_images(Path(root))
        self.split, self.max_side = split, max_side
        table = load_index(self.root)
        self._class_names = sorted(set(table.column("category").to_pylist()))
        if split != "all":
            table = table.filter(table.column("split").to_numpy(zero_copy_only=False) == split)
        self.rows: list[dict] = table.to_pylist()  # the listing, without images
        label_of = {name: index for index, name in enumerate(self._class_names)}
        for row in self.rows:
            row["label"] = label_of[row["category"]]
            row["class_name"] = readable_category(row["category"])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> RawRecord:
        row = self.rows[index]
        metadata = {name: value for name, value in row.items() if name not in ("key", "captions")}
        return RawRecord(
            row["key"], self._small_image(self.root / row["key"]), tuple(row["captions"]), metadata
        )

    def _small_image(self, path: Path) -> Image.Image | Path:
        """The drawing at most ``max_side`` px; the path itself when it will not open, so that
        decoding reports the bad record by name."""
        try:
            with open_image(path, str(path)) as image:
                image = image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image
                image.thumbnail((self.max_side, self.max_side), Image.Resampling.LANCZOS)
                return image.copy()
        except (BadRecordError, OSError, ValueError):
            return path

    def captions(self) -> Iterator[str]:
        for row in self.rows:
            yield from row["captions"]

    def class_names(self) -> list[str]:
        return [readable_category(name) for name in self._class_names]

    @classmethod
    def prepare(
        cls, root: str | Path = OPENCLIPART_ROOT, install: bool = True, progress: bool = False
    ) -> str:
        """``clipforge data prepare openclipart``: install the Debian package if missing (as
        root, ``install`` allowing) and build the cached index (``progress``: a bar on stderr
        while the ~6,900 image headers are read); returns what was done."""
        folder = install_debian_package(Path(root), install)
        load_index(find_images(folder), progress)  # built and cached here, read back below
        every = cls("all", folder)
        val = sum(row["split"] == "val" for row in every.rows)
        return (
            f"builtin:openclipart is ready: {len(every)} drawings ({val} in val) in "
            f"{len(every.class_names())} classes from {folder}; index cached in {cache_dir()}"
        )
