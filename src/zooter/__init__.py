"""zooter: reward-guided routing of queries across large language models (Zooter, arXiv 2311.08692)."""

from zooter.data import ZooterDataModule
from zooter.model import RouterModule, ZooterRouter
from zooter.schema import RoutingTable, TableError, load_table
from zooter.synth import SynthConfig, generate

__version__ = "0.1.0"
__all__ = [
    "RouterModule",
    "RoutingTable",
    "SynthConfig",
    "TableError",
    "ZooterDataModule",
    "ZooterRouter",
    "__version__",
    "generate",
    "load_table",
]
