"""zooter: reward-guided routing of queries across large language models (Zooter, arXiv 2311.08692).

The public names below are imported on first use (PEP 562), so ``import zooter.table.schema`` or
``import zooter.files`` does not load Lightning, torch or transformers.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("zooter")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "Router": "zooter.inference",
    "RoutingDecision": "zooter.inference",
    "RouterModule": "zooter.routers.base",
    "TrainableRouter": "zooter.routers.base",
    "ZooterRouter": "zooter.routers.zooter",
    "RoutingTable": "zooter.table.schema",
    "TableError": "zooter.table.schema",
    "load_table": "zooter.table.schema",
    "SynthConfig": "zooter.table.synth",
    "ZooterDataModule": "zooter.data.datamodule",
}
__all__ = [
    "Router",
    "RouterModule",
    "RoutingDecision",
    "RoutingTable",
    "SynthConfig",
    "TableError",
    "TrainableRouter",
    "ZooterDataModule",
    "ZooterRouter",
    "__version__",
    "generate_synthetic_table",
    "load_table",
]

if TYPE_CHECKING:
    from zooter.data.datamodule import ZooterDataModule
    from zooter.inference import Router, RoutingDecision
    from zooter.routers.base import RouterModule, TrainableRouter
    from zooter.routers.zooter import ZooterRouter
    from zooter.table.schema import RoutingTable, TableError, load_table
    from zooter.table.synth import SynthConfig
    from zooter.table.synth import generate as generate_synthetic_table


def __getattr__(name: str) -> Any:
    if name == "generate_synthetic_table":
        return importlib.import_module("zooter.table.synth").generate
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zooter' has no attribute {name!r}")
