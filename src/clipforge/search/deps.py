"""Optional dependencies of the search tools, imported only when used.

``faiss-cpu``, ``scipy``, ``fastapi``, ``uvicorn``, ``python-multipart`` and
``prometheus-client`` come with the
``search`` extra (``pip install 'clipforge[search]'``); training and evaluation never need them.
"""

from __future__ import annotations

from types import ModuleType

from ..common.optional import require as require_optional

_PACKAGES = {
    "faiss": "faiss-cpu",
    "scipy": "scipy",
    "scipy.sparse": "scipy",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "python_multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or fail with the pip command that installs it."""
    return require_optional(
        module, "search", "clipforge's search tools", _PACKAGES.get(module, module)
    )
