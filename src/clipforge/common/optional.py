"""Optional dependencies, imported only where used, failing with the command that installs them.

``transformers`` comes with the ``hf`` extra, FAISS / SciPy / FastAPI / Uvicorn with ``search``:
training on the built-in data never needs them.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise ImportError naming ``purpose`` and the pip command, e.g.
    ``require("transformers", "hf", "Hugging Face CLIP conversion")``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = package or module
        raise ImportError(
            f"{purpose} needs {package!r}, which is not installed: "
            f"pip install 'clipforge[{extra}]' (or pip install {package})"
        ) from error


def try_import(module: str) -> ModuleType | None:
    """``module`` if it imports, else None: for what degrades rather than fails without it
    (a loss curve or a report's plots without matplotlib)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
