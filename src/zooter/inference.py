"""Routing decisions for use: a trained checkpoint in, one candidate per query out.

Python::

    from zooter import Router

    router = Router.from_checkpoint("runs/quickstart/version_0/checkpoints/last.ckpt")
    for decision in router.route(["Prove that sqrt(2) is irrational."], threshold=0.4):
        print(decision.candidate, decision.probability, decision.fallback)

Command line::

    zooter route --ckpt_path C "first query" "second query"
    zooter route --ckpt_path C --file queries.jsonl --out decisions.jsonl

The decision rule (:func:`zooter.eval.decisions.cost_aware_choice`, the one the cost–quality curves of
:mod:`zooter.eval.cost_quality` sweep), per query, with router probabilities ``p`` over the candidates:

1. ``threshold``: when ``max(p) < threshold`` the router is unsure and the query goes to the
   ``fallback``: the best single model on average (``"best_single"``, the default; BMA, chosen on the
   training split by the evaluation judge, stored in the checkpoint) or the cheapest candidate by
   ``costs`` (``"cheapest"``); the decision is marked ``fallback``.
2. otherwise, with ``costs`` (one number per candidate, in any unit, e.g. dollars per 1k tokens) and
   ``cost_weight`` λ: the candidate maximising ``p_i − λ·cost_i``; λ = 0 (default) is the paper's argmax.

A calibration file of ``zooter calibrate`` (:mod:`zooter.calibration`) replaces these settings with
the rule it chose on validation: the two-model rule (strong where ``p_strong − p_weak ≥ threshold``,
else weak; never marked ``fallback``) or λ with the stored costs. Give it to
``Router.from_checkpoint(path, calibration=F)``, ``Router.route(..., calibration=F)`` or
``zooter route --calibration F``; it is refused for any checkpoint but the one it was made for (sha256).

``num_threads`` (default 1) is torch's intra-op thread count while the router computes. One thread
gives the lowest single-query latency, and on a busy machine the best batch throughput too: on 2
cores at load average 5-6, one query took 3.9 ms at the median with 1 thread against 12-24 ms with 2
(tiny router; p95 8 ms against 400 ms) and 21 ms against 110-470 ms (MiniLM); a batch of 64, 1,300
against 60-260 queries/s (tiny). It is set with ``torch.set_num_threads``, a setting of the whole
process, for the duration of each call, and the caller's count is restored afterwards; ``None``
keeps torch's own (all cores), which can pay off for large batches on an idle many-core machine.

The checkpoint carries everything needed: weights, candidate list, the tokenizer's files (for
``tiny-deberta`` it was trained on the training queries) and ``max_length``. The encoder's
architecture is rebuilt from its name (``minilm`` from the installed package, a hub id from the
local Hugging Face cache) without loading pretrained weights.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from zooter.calibration import Calibration, file_sha256
from zooter.eval.decisions import check_cost_weight, cost_aware_choice, fallback_index

if TYPE_CHECKING:  # torch, transformers and Lightning load when a router does (`zooter route --help` stays quick)
    from transformers import PreTrainedTokenizerBase

    from zooter.routers.base import RouterModule


@dataclass(frozen=True)
class RoutingDecision:
    """Where one query goes and why."""

    query: str
    candidate: str  # the chosen candidate
    probability: float  # the router's probability of the chosen candidate
    probabilities: dict[str, float]  # the router's full distribution
    fallback: bool  # True: the router was below the threshold and the fallback candidate was chosen


class Router:
    """A trained router for routing queries; build it with :meth:`from_checkpoint`."""

    def __init__(
        self,
        model: RouterModule,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = 128,
        best_single: str | None = None,
        batch_size: int = 64,
        num_threads: int | None = 1,
        checkpoint: str | Path | None = None,
        calibration: str | Path | Calibration | None = None,
    ) -> None:
        """``checkpoint``: the file the model came from (a calibration is checked against it);
        ``calibration``: the rule :meth:`route` applies by default (see the module docstring)."""
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 (or None for torch's setting), got {num_threads}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.best_single = best_single
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self._checkpoint_sha256: str | None = None
        self.calibration = None if calibration is None else self.checked_calibration(calibration)

    @property
    def candidates(self) -> list[str]:
        return list(self.model.candidates)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        batch_size: int = 64,
        num_threads: int | None = 1,
        calibration: str | Path | Calibration | None = None,
    ) -> Router:
        """Load a checkpoint written by ``zooter fit`` (or ``zooter add-candidate``).

        ``num_threads``: torch's intra-op threads while routing (see the module docstring).
        ``calibration``: a calibration file (or loaded :class:`Calibration`) of this checkpoint, whose
        rule :meth:`route` then applies.
        """
        from zooter.routers import encoders

        model, section = load_router(path, device)
        return cls(
            model,
            encoders.tokenizer_from_files(section["tokenizer_files"]),
            max_length=int(section.get("max_length", 128)),
            best_single=section.get("best_single"),
            batch_size=batch_size,
            num_threads=num_threads,
            checkpoint=path,
            calibration=calibration,
        )

    def checked_calibration(self, calibration: str | Path | Calibration) -> Calibration:
        """The calibration (loaded from a path if need be), refused unless it was made for this router's
        checkpoint file and names its candidates."""
        if not isinstance(calibration, Calibration):
            calibration = Calibration.load(calibration)
        if self.checkpoint is None:
            raise ValueError(
                f"calibration {calibration.source or '<memory>'}: this Router was not loaded from a checkpoint "
                "file, so it cannot be checked against the calibrated one; use Router.from_checkpoint"
            )
        if self._checkpoint_sha256 is None:
            self._checkpoint_sha256 = file_sha256(self.checkpoint)
        calibration.check_checkpoint(self.checkpoint, self._checkpoint_sha256)
        calibration.rule.columns(self.candidates)
        return calibration

    def probabilities(self, queries: str | Sequence[str]) -> np.ndarray:
        """The router's distribution over candidates, ``[queries, candidates]`` (rows sum to 1).

        A single string is one query (one row).
        """
        import torch

        queries = _as_queries(queries)
        if not queries:
            return np.zeros((0, len(self.candidates)))
        for i, query in enumerate(queries):
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"query {i}: expected non-empty text, got {query!r}")
        encoded = self.tokenizer(queries, truncation=True, max_length=self.max_length)["input_ids"]
        order = np.argsort([len(ids) for ids in encoded], kind="stable")  # similar lengths pad less
        probs = np.zeros((len(queries), len(self.candidates)))
        device = next(self.model.parameters()).device
        with torch.inference_mode(), torch_threads(self.num_threads):
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt")
                batch = {key: value.to(device) for key, value in batch.items()}
                probs[rows] = self.model.probabilities(batch).cpu().numpy()
        return probs

    def route(
        self,
        queries: str | Sequence[str],
        threshold: float | None = None,
        costs: Mapping[str, float] | None = None,
        cost_weight: float = 0.0,
        calibration: str | Path | Calibration | None = None,
        fallback: str = "best_single",
    ) -> list[RoutingDecision]:
        """One decision per query (see the module docstring for the rule); a single string is one query.

        ``calibration`` (default: the router's own, if any) sets the rule instead of ``threshold``,
        ``costs`` and ``cost_weight``, which must then be left unset. ``fallback``: where a query below
        the threshold goes, ``"best_single"`` or ``"cheapest"`` (by ``costs``)."""
        queries = _as_queries(queries)
        calibration = self.calibration if calibration is None else self.checked_calibration(calibration)
        if calibration is not None and (threshold is not None or costs is not None or cost_weight != 0):
            raise ValueError(
                f"calibration {calibration.source or '<memory>'} sets the routing rule: "
                "give no threshold, costs or cost_weight with it"
            )
        check_cost_weight(cost_weight, costs)  # before the model runs
        cost_vector = self._cost_vector(costs)
        fallback_to = (
            None if threshold is None else fallback_index(fallback, self.candidates, self.best_single, cost_vector)
        )
        probs = self.probabilities(queries)
        if calibration is not None:
            choice, fell_back = calibration.rule.choose(probs, self.candidates), np.zeros(len(probs), dtype=bool)
        else:
            choice, fell_back = cost_aware_choice(probs, cost_vector, cost_weight, threshold, fallback_to)
        return [
            RoutingDecision(
                query=query,
                candidate=self.candidates[k],
                probability=float(p[k]),
                probabilities=dict(zip(self.candidates, map(float, p), strict=True)),
                fallback=bool(fb),
            )
            for query, p, k, fb in zip(queries, probs, choice, fell_back, strict=True)
        ]

    def _cost_vector(self, costs: Mapping[str, float] | None) -> np.ndarray | None:
        if costs is None:
            return None
        missing = [c for c in self.candidates if c not in costs]
        unknown = [c for c in costs if c not in self.candidates]
        if missing or unknown:
            raise ValueError(
                f"costs must give one number per candidate {self.candidates}: missing {missing}, unknown {unknown}"
            )
        return np.array([float(costs[c]) for c in self.candidates])


def _as_queries(queries: str | Sequence[str]) -> list[str]:
    """A list of queries: a lone string is one query, never a sequence of characters."""
    return [queries] if isinstance(queries, str) else list(queries)


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``num_threads`` torch intra-op threads (a process-wide setting), then restore
    the previous count; ``None`` changes nothing."""
    import torch

    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_router(path: str | Path, device: str = "cpu") -> tuple[RouterModule, dict[str, Any]]:
    """The router module of a checkpoint (its class from the saved class path) and the checkpoint's
    ``zooter`` section (candidates, tokenizer files, ``max_length``, best single model, ...)."""
    import torch

    from zooter.routers.base import CHECKPOINT_KEY

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    section = checkpoint.get(CHECKPOINT_KEY, {})
    if "tokenizer_files" not in section:
        raise ValueError(
            f"{path}: the checkpoint holds no tokenizer (written before zooter stored it in the "
            f"'{CHECKPOINT_KEY}' section); retrain it, or build a Router from the model and a tokenizer"
        )
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    module_name, _, class_name = hparams.get("_class_path", "zooter.routers.ZooterRouter").rpartition(".")
    model_class: type[RouterModule] = getattr(importlib.import_module(module_name), class_name)
    # rebuild the architecture only: the checkpoint's weights replace any pretrained ones anyway
    overrides = {"pretrained": False} if "pretrained" in hparams else {}
    model = model_class.load_from_checkpoint(path, map_location=device, **overrides)
    if section.get("candidates", model.candidates) != model.candidates:
        raise ValueError(f"{path}: the checkpoint's candidate list disagrees with its hyperparameters")
    return model, section


def choose(probs: np.ndarray, costs: np.ndarray | None = None, cost_weight: float = 0.0) -> np.ndarray:
    """Index of ``argmax_i p_i − cost_weight·cost_i`` per row (plain argmax without costs): the rule of
    :func:`zooter.eval.decisions.cost_aware_choice` without a threshold."""
    return cost_aware_choice(probs, costs, cost_weight)[0]


def main(argv: list[str]) -> None:
    """``zooter route --ckpt_path C [QUERY ...] [--file F] [--threshold T] [--costs JSON --cost_weight λ]
    [--calibration F]``"""
    from zooter.cli_args import PlainParser
    from zooter.errors import UsageError
    from zooter.pipeline.journal import read_query_rows, write_rows_atomic
    from zooter.table.schema import TableError

    parser = PlainParser(prog="zooter route", description=__doc__.split("\n\n")[0])
    parser.add_argument("queries", nargs="*", help="queries to route (or --file)")
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a checkpoint written by zooter fit")
    parser.add_argument("--file", type=Path | None, default=None, help="a file of query rows (id, query)")
    parser.add_argument("--out", type=Path | None, default=None, help="write decisions as JSON Lines here")
    parser.add_argument(
        "--threshold", type=float | None, default=None, help="below this top probability: the --fallback candidate"
    )
    parser.add_argument(
        "--fallback", type=Literal["best_single", "cheapest"], default="best_single", help="cheapest: by --costs"
    )
    parser.add_argument("--costs", type=dict[str, float] | None, default=None, help='e.g. {"a": 1.0, "b": 0.1}')
    parser.add_argument("--cost_weight", type=float, default=0.0, help="λ in p_i − λ·cost_i (needs --costs)")
    parser.add_argument(
        "--calibration",
        type=Path | None,
        default=None,
        help="a file of zooter calibrate: its rule instead of --threshold/--costs/--cost_weight",
    )
    parser.add_argument("--device", type=str, default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument(
        "--num_threads",
        type=int | None,
        default=1,
        help="torch intra-op threads while routing (1: lowest single-query latency; null: torch's default)",
    )
    args = parser.parse_args(argv)
    if args.calibration is not None:
        given = [f"--{k}" for k in ("threshold", "costs") if getattr(args, k) is not None]
        given += ["--cost_weight"] if args.cost_weight != 0 else []
        if given:
            raise UsageError(f"--calibration sets the routing rule: leave out {', '.join(given)}")
    if args.cost_weight != 0 and args.costs is None:
        sys.exit(f"zooter route: --cost_weight {args.cost_weight} needs --costs (one number per candidate, e.g. "
                 """--costs '{"a": 1.0, "b": 0.1}'); without --costs there is nothing to weigh""")  # fmt: skip
    if args.costs is not None and args.cost_weight == 0 and not (args.fallback == "cheapest" and args.threshold):
        sys.exit(
            "zooter route: --costs has no effect with --cost_weight 0 (the default): give --cost_weight λ > 0, "
            "or --threshold T with --fallback cheapest"
        )
    try:
        rows = [{"id": str(i), "query": q} for i, q in enumerate(args.queries)]
        if args.file is not None:
            rows += read_query_rows(args.file)
        if not rows:
            raise ValueError("nothing to route: give queries as arguments or --file")
        router = Router.from_checkpoint(
            args.ckpt_path,
            device=args.device,
            batch_size=args.batch_size,
            num_threads=args.num_threads,
            calibration=args.calibration,
        )
        decisions = router.route(
            [r["query"] for r in rows], args.threshold, args.costs, args.cost_weight, fallback=args.fallback
        )
    except (ValueError, FileNotFoundError, TableError) as err:
        sys.exit(f"zooter route: {err}")
    width = max(len(c) for c in router.candidates)
    for row, decision in zip(rows, decisions, strict=True):
        note = f" (fallback: {'BMA' if args.fallback == 'best_single' else 'cheapest'})" if decision.fallback else ""
        preview = row["query"].replace("\n", " ")
        preview = preview if len(preview) <= 70 else preview[:67] + "..."
        print(f"{decision.candidate:<{width}}  p={decision.probability:.3f}{note}  {preview}")
    if args.out is not None:
        records = [
            {"id": row["id"], **{k: v for k, v in asdict(decision).items() if k != "query"}}
            for row, decision in zip(rows, decisions, strict=True)
        ]
        print(f"zooter route: {len(records)} decisions -> {write_rows_atomic(records, args.out)}")
