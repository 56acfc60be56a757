"""zooter: reward-guided routing of queries across large language models (Zooter, arXiv 2311.08692)."""

from zooter.data import ZooterDataModule
from zooter.model import RouterModule, ZooterRouter
from zooter.route import Router, RoutingDecision
from zooter.schema import RoutingTable, TableError, load_table
from zooter.synth import SynthConfig
from zooter.synth import generate as generate_synthetic_table

__version__ = "0.1.0"
__all__ = [
    "Router",
    "RouterModule",
    "RoutingDecision",
    "RoutingTable",
    "SynthConfig",
    "TableError",
    "ZooterDataModule",
    "ZooterRouter",
    "__version__",
    "generate_synthetic_table",
    "load_table",
]
