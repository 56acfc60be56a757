"""A Lightning callback for the benchmarks: when ``zooter predict`` starts and ends its predict loop.

Added to a ``zooter predict`` process as ``--trainer.callbacks+=predict_timer.PredictTimer`` with
``benchmarks/`` on ``PYTHONPATH``; it appends ``{"predict_start": t0, "predict_end": t1}``
(``time.time()``) as one JSON line to the file named by ``$ZOOTER_BENCH_TIMES``, so a benchmark can
split the process's wall time into start-up, the predict loop (including writing predictions.jsonl),
and shutdown.
"""

from __future__ import annotations

import json
import os
import time

from lightning.pytorch import Callback, LightningModule, Trainer

TIMES_ENV = "ZOOTER_BENCH_TIMES"


class PredictTimer(Callback):
    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = time.time()

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        end = time.time()
        with open(os.environ[TIMES_ENV], "a", encoding="utf-8") as f:
            f.write(json.dumps({"predict_start": self.start, "predict_end": end}) + "\n")
