"""Routers: one seam (``base``), the paper's router (``zooter``), baselines fitted from the tables
(``baselines``), losses and encoders. Classes are imported on first use (PEP 562)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RouterModule": "zooter.routers.base",
    "TrainableRouter": "zooter.routers.base",
    "ZooterRouter": "zooter.routers.zooter",
    "EncoderRouter": "zooter.routers.encoder_router",
    "MatrixFactorizationRouter": "zooter.routers.matrix_factorization",
    "RouterDCRouter": "zooter.routers.contrastive",
    "ProbeRouter": "zooter.routers.probe",
    "FittedRouter": "zooter.routers.baselines",
    "BestSingleRouter": "zooter.routers.baselines",
    "RandomRouter": "zooter.routers.baselines",
    "OracleRouter": "zooter.routers.baselines",
    "RewardModelRankingRouter": "zooter.routers.baselines",
    "TagMajorityRouter": "zooter.routers.baselines",
    "KNNRouter": "zooter.routers.baselines",
}
__all__ = [
    "BestSingleRouter",
    "EncoderRouter",
    "FittedRouter",
    "KNNRouter",
    "MatrixFactorizationRouter",
    "OracleRouter",
    "ProbeRouter",
    "RandomRouter",
    "RewardModelRankingRouter",
    "RouterDCRouter",
    "RouterModule",
    "TagMajorityRouter",
    "TrainableRouter",
    "ZooterRouter",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zooter.routers' has no attribute {name!r}")
