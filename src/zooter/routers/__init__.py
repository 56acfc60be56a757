"""Routers: one seam (``base``), the paper's router (``zooter``), baselines fitted from the tables
(``baselines``), losses and encoders. Classes are imported on first use (PEP 562)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RouterModule": "zooter.routers.base",
    "ZooterRouter": "zooter.routers.zooter",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zooter.routers' has no attribute {name!r}")
