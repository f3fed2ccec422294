"""``classcsv:``: an image-classification set listed in a table of (image, label) rows.

::

    image,label                       ?image_column=  (default image, else filepath)
    cats/001.jpg,tabby cat            ?label_column=  (default label)
    dogs/002.jpg,golden retriever     ?classnames=names.txt  (optional)

Any table :mod:`.table` reads (CSV, TSV, Parquet). Image paths are absolute, or relative to
``?image_root=DIR``, else to the table's folder. Class names, in label order, are:

- without a class-names file: the sorted unique labels (numerically when every label is a
  whole number, so ``2`` comes before ``10``), as torchvision's ``ImageFolder`` sorts classes;
- with ``?classnames=FILE`` (CLIP_benchmark's ``classnames.txt``: one name per line, in label
  order; or a ``.json`` list): that file's names, a label being either a class index or one of
  the names. A label that is neither refuses the table, naming the row and label.

Each record's caption is its class name and ``metadata["label"]`` its index, as
:mod:`.classfolder` gives them, so zero-shot classification reads either.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..record import RawRecord
from .base import MapSource, SourceOptions
from .table import DEFAULT_COLUMNS, read_table

DEFAULT_LABEL_COLUMN = "label"


def read_class_names(path: Path) -> list[str]:
    """Names in label order from a ``.txt`` (one per line, blank lines skipped) or a ``.json``
    list."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: class names file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            names = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: expected a JSON list of class names")
    else:
        names = text.splitlines()
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise ValueError(f"{path}: no class names (one per line, in label order)")
    return names


def _sorted_labels(labels: set[str]) -> list[str]:
    if all(label.isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


class ClassTableSource(MapSource):
    name = "classcsv"

    def __init__(self, location: str | Path, options: SourceOptions | None = None):
        options = options or SourceOptions()
        self.path = Path(location).expanduser()
        table, bad_rows = read_table(self.path, options.separator)
        if bad_rows:
            raise ValueError(f"{self.path}: {next(iter(bad_rows.values()))}")
        present = table.column_names
        image_candidates = (
            (options.image_column,) if options.image_column else DEFAULT_COLUMNS["image_column"]
        )
        label_column = options.label_column or DEFAULT_LABEL_COLUMN
        image_column = next((c for c in image_candidates if c in present), None)
        for wanted, option in ((image_column, "image_column"), (label_column, "label_column")):
            if wanted is None or wanted not in present:
                names = " or ".join(repr(c) for c in image_candidates) if wanted is None else wanted
                raise ValueError(
                    f"{self.path}: no column {names} (the {option}); its columns are {present}"
                )
        self.image_root = Path(options.image_root) if options.image_root else self.path.parent
        if not self.image_root.is_dir():
            raise FileNotFoundError(f"{self.image_root}: no such image folder")
        images = [str(v or "") for v in table.column(image_column).to_pylist()]
        labels = [str(v or "").strip() for v in table.column(label_column).to_pylist()]
        if not images:
            raise ValueError(f"{self.path}: the table has no rows")
        if options.classnames:
            self._class_names = read_class_names(Path(options.classnames))
        else:
            self._class_names = _sorted_labels(set(labels) - {""})
        index_of = {name: i for i, name in enumerate(self._class_names)}
        self.items: list[tuple[str, int]] = []
        for row, (image, label) in enumerate(zip(images, labels, strict=True)):
            if not label:
                raise ValueError(f"{self.path}: row {row}: empty {label_column!r}")
            if label in index_of:
                self.items.append((image, index_of[label]))
            elif label.isdigit() and options.classnames and int(label) < len(self._class_names):
                self.items.append((image, int(label)))
            else:
                raise ValueError(
                    f"{self.path}: row {row}: label {label!r} is neither a class name of "
                    f"{options.classnames} nor an index below {len(self._class_names)}"
                )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> RawRecord:
        image, label = self.items[index]
        name = self._class_names[label]
        return RawRecord(str(index), self.image_root / image, (name,), {"label": label})

    def captions(self):
        for _, label in self.items:
            yield self._class_names[label]

    def class_names(self) -> list[str]:
        return list(self._class_names)
