"""Prepare the built-in data sets.

python scripts/prepare_builtin.py emoji [--out PATH] [--size 72]
    re-render src/clipforge/data/assets/emoji.parquet from Debian's fonts-noto-color-emoji,
    unicode-data and unicode-cldr-core (the repository ships the result)
python scripts/prepare_builtin.py openclipart
    install openclipart-png if missing (as root) and build the cached file index
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["emoji", "openclipart"])
    parser.add_argument("--out", help="emoji: output Parquet (default: the shipped asset)")
    parser.add_argument("--size", type=int, default=72, help="emoji: image side in pixels")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.name == "emoji":
        from emoji_asset.prepare import prepare_emoji  # scripts/ is on sys.path

        from clipforge.data.builtin.emoji import EMOJI_ASSET, EmojiSource

        path = prepare_emoji(args.out or EMOJI_ASSET, args.size)
        every = EmojiSource("all", path)
        print(
            f"wrote {path}: {len(every)} emoji, {path.stat().st_size / 2**20:.2f} MiB, "
            f"{len(EmojiSource('val', path))} in val"
        )
    else:
        from clipforge.data.builtin.openclipart import OpenClipartSource

        print(OpenClipartSource.prepare())  # as `clipforge data prepare openclipart`
    print(f"took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
