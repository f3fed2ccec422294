"""Write the README's example images from the built-in emoji set (the repository ships them).

    python scripts/example_images.py                 # examples/apple.png (🍎, "red apple")
    python scripts/example_images.py "green apple" --out /tmp/x

Each image is the emoji's 72 px drawing from ``builtin:emoji`` on a white background, saved as
PNG under its CLDR name with spaces as ``_`` minus a trailing ``red_`` (``red apple`` →
``apple.png``), so README commands such as ``clipforge search --image examples/apple.png`` run
in a fresh clone.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NAMES = ("red apple",)


def file_name(emoji_name: str) -> str:
    return emoji_name.removeprefix("red ").replace(" ", "_") + ".png"


def render(emoji_name: str) -> bytes:
    """PNG bytes of the named emoji (CLDR short name) flattened onto white."""
    from clipforge.data.builtin.emoji import EmojiSource
    from clipforge.data.record import decode_image

    emoji = EmojiSource("all")
    for index in range(len(emoji)):
        record = emoji[index]
        if record.metadata["name"] == emoji_name:
            buffer = io.BytesIO()
            decode_image(record).save(buffer, format="PNG", optimize=True)  # onto white
            return buffer.getvalue()
    raise ValueError(f"no emoji named {emoji_name!r} in builtin:emoji")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        default=list(DEFAULT_NAMES),
        help="CLDR emoji names (default: red apple)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        path = args.out / file_name(name)
        path.write_bytes(render(name))
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
