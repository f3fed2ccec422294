"""An image-classification folder: one sub-folder per class, the folder name is the class name.

::

    pets/
      golden_retriever/ 001.jpg 002.png …
      tabby_cat/        a.jpg sub/b.jpg …

Class names are the sub-folder names with ``_`` read as a space ("golden retriever"), in sorted
order; images are found recursively inside each class folder (as torchvision's ``ImageFolder``).
Hidden files and folders are ignored. A class folder holding no image is not a class (it
would be a zero-shot distractor no image can match, and it would shift every label after it): it
is left out with a warning naming it, and listed in ``empty_classes``. Each record's caption is
its class name and ``metadata["label"]`` its class index, so the folder serves zero-shot
classification and, with one caption per image, retrieval too.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..record import RawRecord
from .base import MapSource, SourceOptions

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _images(class_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in class_dir.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and _visible(p, class_dir)
    )


class ClassFolderSource(MapSource):
    name = "classfolder"

    def __init__(self, location: str | Path, options: SourceOptions | None = None):
        self.root = Path(location)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such image folder")
        class_dirs = sorted(
            d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        if not class_dirs:
            raise ValueError(
                f"{self.root}: no class sub-folders (expected one folder per class, "
                f"named after the class, holding its images)"
            )
        images_of = {d.name: _images(d) for d in class_dirs}
        self.empty_classes = [name for name, images in images_of.items() if not images]
        self.folder_names = [name for name, images in images_of.items() if images]
        if not self.folder_names:
            raise ValueError(
                f"{self.root}: the class sub-folders hold no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        if self.empty_classes:
            warnings.warn(
                f"{self.root}: {len(self.empty_classes)} class folder(s) hold no "
                f"image and are left out of the classes: "
                f"{', '.join(self.empty_classes)}",
                stacklevel=2,
            )
        self.items: list[tuple[Path, int]] = [
            (path, label)
            for label, name in enumerate(self.folder_names)
            for path in images_of[name]
        ]
        self._class_names = [name.replace("_", " ") for name in self.folder_names]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> RawRecord:
        path, label = self.items[index]
        class_name = self._class_names[label]
        return RawRecord(
            path.relative_to(self.root).as_posix(), path, (class_name,), {"label": label}
        )

    def captions(self):
        for _, label in self.items:
            yield self._class_names[label]

    def class_names(self) -> list[str]:
        return list(self._class_names)
