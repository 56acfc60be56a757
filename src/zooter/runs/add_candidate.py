"""``zooter add-candidate``: route over one more LLM without retraining the router.

    zooter add-candidate --ckpt_path C --table new_scores.jsonl --candidate NAME --out C_plus.ckpt

Fits only the new candidate's parameters (``TrainableRouter.add_candidate``: a row of the paper's head,
a candidate embedding of RouterDC / matrix factorisation), everything else frozen and in eval mode, with
the router's own loss. The targets cover the N + 1 candidates: the sample-level soft labels ``s(q)``
(``beta`` = 1: the training run's tag table knows nothing of the new candidate) with the training run's
temperature and standardization, on the table's rows that score the new candidate (rows that do not
are counted and left out). Give it TRAINING queries (never the test split). The new checkpoint routes
over N + 1 candidates and loads like any other (``zooter test/predict --ckpt_path``, ``zooter route``,
``Router.from_checkpoint``); it holds no optimizer state, so training does not resume from it.

torch and the routers are imported inside the functions, so ``zooter add-candidate --help`` answers at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zooter.data import targets
from zooter.files import atomic_path
from zooter.inference import load_router
from zooter.table.schema import TableError, load_table

# Not typing.TYPE_CHECKING: jsonargparse executes the typing.TYPE_CHECKING blocks of the module whose class
# it parses (AddCandidate), which would load torch and Lightning for `zooter add-candidate --help`.
# Type checkers read this block all the same (they go by the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from zooter.routers.base import TrainableRouter


@dataclass
class AddCandidate:
    """Settings of ``zooter add-candidate``.

    Args:
        ckpt_path: a checkpoint of a trainable router (``zooter fit``).
        table: a routing table that scores the new candidate (and the old ones) on training queries.
        candidate: the new candidate's name (a candidate of ``table``, not of the checkpoint).
        out: where to write the new checkpoint.
        judge: the judge whose scores make the targets (default: the training run's ``data.train_judge``).
        epochs: passes over the table's rows.
        lr: AdamW learning rate of the new parameters (no weight decay).
        batch_size: queries per step.
        seed: seed of the batch order.
    """

    ckpt_path: Path
    table: Path
    candidate: str
    out: Path
    judge: str | None = None
    epochs: int = 20
    lr: float = 1e-2
    batch_size: int = 32
    seed: int = 0


def add_candidate(settings: AddCandidate) -> Path:
    """Fit the new candidate's parameters and write the checkpoint; returns its path."""
    import torch

    from zooter.data.batching import RoutingCollator, RoutingDataset
    from zooter.routers import encoders
    from zooter.routers.base import TrainableRouter

    model, section = load_router(settings.ckpt_path)
    if not isinstance(model, TrainableRouter):
        raise ValueError(f"{settings.ckpt_path}: {type(model).__name__} is not trained by gradient steps")
    if settings.candidate in model.candidates:
        raise ValueError(f"{settings.candidate!r} is already a candidate of {settings.ckpt_path}: {model.candidates}")
    checkpoint = torch.load(settings.ckpt_path, map_location="cpu", weights_only=False)
    data = checkpoint.get("datamodule_hyper_parameters", {})
    judge = settings.judge or data.get("train_judge", "scores")
    candidates = [*model.candidates, settings.candidate]
    table = load_table(settings.table, candidates=candidates, required_judges=(judge,), min_judged=2)
    rewards = targets.standardize(table.judge(judge), data.get("standardization", "none"))
    rows = np.flatnonzero(np.isfinite(rewards[:, -1]))
    if len(rows) == 0:
        raise TableError(f"{settings.table}: no row scores {settings.candidate!r} under judge {judge!r}")
    print(
        f"zooter add-candidate: {len(rows)} of {len(table)} rows of {settings.table} score {settings.candidate!r} "
        f"({len(table) - len(rows)} left out); judge {judge!r}",
        flush=True,
    )
    rewards = rewards[rows]
    tokenizer = encoders.tokenizer_from_files(section["tokenizer_files"])
    encoded = tokenizer([table.queries[i] for i in rows], truncation=True, max_length=int(section["max_length"]))
    labels = targets.soft_labels(rewards, float(data.get("temperature", 1.0)))
    dataset = RoutingDataset(encoded["input_ids"], labels, np.isfinite(rewards), rewards=rewards)
    generator = torch.Generator().manual_seed(settings.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=True,
        collate_fn=RoutingCollator(tokenizer),
        generator=generator,
    )
    fit_new_candidate(model, settings.candidate, loader, settings.epochs, settings.lr)
    return save(model, checkpoint, settings)


def fit_new_candidate(model: TrainableRouter, name: str, loader: Any, epochs: int, lr: float) -> None:
    """Grow the router by ``name`` and fit only its new entries with the router's loss."""
    import torch
    from tqdm.auto import tqdm

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    grown = model.add_candidate(name)
    for parameter, mask in grown:
        parameter.requires_grad_(True)
        parameter.register_hook(lambda grad, keep=mask: grad * keep)  # old candidates' entries stay as they were
    model.eval()  # frozen: no dropout, and batch statistics stay put
    optimizer = torch.optim.AdamW([p for p, _ in grown], lr=lr, weight_decay=0.0)
    losses = []
    for _ in tqdm(range(epochs), desc=f"fitting {name}", unit="epoch"):
        total = 0.0
        for batch in loader:
            loss = model.loss(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * batch["input_ids"].shape[0]
        losses.append(total / len(loader.dataset))
    print(f"zooter add-candidate: loss {losses[0]:.4f} (first epoch) -> {losses[-1]:.4f} (last)", flush=True)


def save(model: TrainableRouter, checkpoint: dict[str, Any], settings: AddCandidate) -> Path:
    """The original checkpoint with the grown weights and candidate list, without optimizer state."""
    import torch

    from zooter.routers.base import CHECKPOINT_KEY

    checkpoint = {k: v for k, v in checkpoint.items() if k not in ("optimizer_states", "lr_schedulers", "loops")}
    checkpoint["state_dict"] = model.state_dict()
    checkpoint["hyper_parameters"]["candidates"] = list(model.candidates)
    section = checkpoint[CHECKPOINT_KEY]
    section["candidates"] = list(model.candidates)
    section["added_candidates"] = [*section.get("added_candidates", []), settings.candidate]
    with atomic_path(settings.out) as tmp:
        torch.save(checkpoint, tmp)
    print(f"zooter add-candidate: {len(model.candidates)} candidates -> {settings.out}", flush=True)
    return settings.out


def main(argv: list[str]) -> None:
    """``zooter add-candidate --ckpt_path C --table T --candidate NAME --out OUT [...]``"""
    from zooter.cli_args import PlainParser

    parser = PlainParser(prog="zooter add-candidate", description=__doc__.split("\n\n")[0])
    parser.add_class_arguments(AddCandidate, nested_key=None)
    settings = AddCandidate(**parser.instantiate_classes(parser.parse_args(argv)).as_dict())
    try:
        add_candidate(settings)
    except (ValueError, FileNotFoundError, TableError, NotImplementedError) as err:
        sys.exit(f"zooter add-candidate: {err}")
