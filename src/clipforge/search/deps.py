"""Optional dependencies of the search tools, imported only when used.

``faiss-cpu``, ``scipy``, ``fastapi``, ``uvicorn``, ``python-multipart`` and
``prometheus-client`` come with the
``search`` extra (``pip install 'clipforge[search]'``); training and evaluation never need them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_PACKAGES = {"faiss": "faiss-cpu", "scipy": "scipy", "scipy.sparse": "scipy",
             "fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart",
             "prometheus_client": "prometheus-client"}


def require(module: str) -> ModuleType:
    """Import ``module`` or fail with the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = _PACKAGES.get(module, module)
        raise ImportError(
            f"clipforge's search tools need {package!r}, which is not installed: "
            f"pip install 'clipforge[search]' (or pip install {package})") from error
