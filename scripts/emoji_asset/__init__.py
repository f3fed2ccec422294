"""How the shipped emoji asset (``src/clipforge/data/assets/emoji.parquet``) is built from
Debian's font and Unicode data: build-time tooling, not part of the runtime package.
Run through ``python scripts/prepare_builtin.py emoji``."""
