"""Image-text pairs as files: img2dataset's ``files`` output layout.

::

    pairs/
      00000/ 000000000.jpg 000000000.txt 000000000.json
             000000001.png 000000001.txt
      more/  cat.webp      cat.txt

Every image (``.jpg .jpeg .png .webp .bmp .gif``, any depth, hidden files and folders ignored)
is one record; its caption is the ``.txt`` file of the same stem next to it and its optional
``.json`` file of the same stem is merged into ``metadata``. The key is the image's path
relative to the root without its suffix (``00000/000000000``). Records are sorted by key, so the
order is the same on every machine.

A missing caption file gives a record with no caption, which the loader counts as bad (it does
not stop the run); a folder with images but no caption file at all is refused at once, since
that is almost surely a class-per-folder layout (``classfolder:``).

Listing walks the tree once and keeps only relative paths; captions and JSON are read when a
record is asked for, in the loader's workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..record import RawRecord
from .base import MapSource, SourceOptions

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})


def read_caption_file(path: Path) -> tuple[str, ...]:
    """The caption in ``path`` (UTF-8, undecodable bytes replaced), or ``()`` when absent."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ()
    text = text.strip()
    return (text,) if text else ()


def read_json_sidecar(path: Path) -> dict:
    """The JSON object in ``path``; ``{}`` when absent; ``{"json_error": …}`` when unreadable."""
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as error:
        return {"json_error": f"{path.name}: {error}"}
    return value if isinstance(value, dict) else {"json": value}


class FolderSource(MapSource):
    name = "folder"

    def __init__(self, location: str | Path, options: SourceOptions | None = None):
        self.root = Path(location).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such image-caption folder")
        self.paths, captioned = _list_images(self.root)
        if not self.paths:
            raise ValueError(f"{self.root}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if captioned == 0:
            raise ValueError(
                f"{self.root}: {len(self.paths)} images but no caption files (a .txt of the "
                f"same name next to each image); for one sub-folder per class use "
                f"classfolder:{self.root}"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def key(self, index: int) -> str:
        return os.path.splitext(self.paths[index])[0]

    def __getitem__(self, index: int) -> RawRecord:
        relative = self.paths[index]
        image_path = self.root / relative
        metadata = read_json_sidecar(image_path.with_suffix(".json"))
        captions = read_caption_file(image_path.with_suffix(".txt"))
        return RawRecord(self.key(index), image_path, captions, metadata)

    def captions(self) -> Iterator[str]:
        for relative in self.paths:
            yield from read_caption_file((self.root / relative).with_suffix(".txt"))


def _list_images(root: Path) -> tuple[list[str], int]:
    """Sorted relative POSIX paths of the images under ``root``, and how many have a caption."""
    paths: list[str] = []
    captioned = 0
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        relative_dir = Path(directory).relative_to(root)
        visible = [f for f in files if not f.startswith(".")]
        caption_stems = {f[:-4] for f in visible if f.lower().endswith(".txt")}
        for name in visible:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES:
                paths.append((relative_dir / name).as_posix())
                captioned += stem in caption_stems
    paths.sort()
    return paths, captioned
