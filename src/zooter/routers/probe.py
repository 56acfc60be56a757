"""A probe on a frozen encoder: the query embeddings are computed once (and cached on disk), so training
fits only a small head and takes seconds.

- The encoder (the data's ``encoder``: ``minilm``, a hub id, or ``tiny-deberta``) is never trained:
  ``requires_grad`` off, always in eval mode (no dropout). It is held outside the module tree, so it is
  in neither ``parameters()`` (the optimizer sees the head only) nor ``state_dict()``: a checkpoint
  holds the head alone. Loading a checkpoint (``Router.from_checkpoint``, ``--ckpt_path``) rebuilds
  the encoder the same way: the pretrained weights for ``minilm`` and hub ids (which must be available
  offline, like the data's tokenizer), and for ``tiny-deberta`` (random init, meaningful in tests only)
  weights drawn with a fixed seed. The checkpoint section records a digest of the encoder's weights,
  and loading refuses a checkpoint whose encoder rebuilds differently (e.g. another release of the
  packaged model).
- ``setup`` embeds every split of the data module from the data module's own token ids (so the vectors
  are the ones :meth:`zooter.inference.Router.route` computes from the text, up to float rounding),
  cached under the data's ``cache_dir`` as ``probe-embeddings-<key>.npy``, the key hashing the encoder
  name, the digest of its weights, the tokenizer fingerprint, ``max_length``, the pooling and the
  queries. A second run, a seed or a sweep over the head and the optimization embeds nothing.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from transformers import PreTrainedModel

from zooter.data.batching import RoutingCollator
from zooter.files import atomic_path
from zooter.routers import encoders
from zooter.routers.base import CheckpointMismatchError, TrainableRouter
from zooter.routers.encoder_router import EncoderRouter
from zooter.routers.losses import hard_label_cross_entropy, kl_divergence, reward_regression
from zooter.routers.zooter import ZooterRouter

ProbeHead = Literal["linear", "mlp"]
ProbeLoss = Literal["kl", "ce", "mse", "bce"]
ENCODER_SEED = 0  # the frozen encoder is built under this seed: tiny-deberta's random weights are reproducible
CACHE_VERSION = 1  # part of the embeddings' cache key: bump when the embedding computation changes


class ProbeRouter(TrainableRouter):
    """A head trained on the cached embeddings of a frozen encoder.

    ``scores``: ``head(embedding)``, the embedding looked up in the split's cache by ``batch["index"]``
    when the batch names its split, else computed by the frozen encoder from ``input_ids`` (text routed
    with :class:`zooter.inference.Router`, ``zooter add-candidate``).

    Args:
        candidates: candidate names (linked from ``data.candidates``; stored in every checkpoint).
        encoder: ``tiny-deberta``, ``minilm`` or a hub id / local path (linked from ``data.encoder``).
        vocab_size: tokenizer size (linked from the data; used by ``tiny-deberta``).
        tokenizer_fingerprint: hash of the tokenizer the data module built (linked; checked on reload).
        pooling: ``mean`` over non-padding tokens (as MiniLM was trained) or ``cls`` (first token).
        head: ``linear`` (dropout, linear layer) or ``mlp`` (dropout, ``hidden_dim`` wide GELU layer,
            dropout, linear layer).
        hidden_dim: width of the ``mlp`` head's hidden layer.
        dropout: dropout on the embedding (and on the ``mlp``'s hidden layer).
        loss: ``kl``: KL(s* || softmax(scores)), the paper's distillation; ``ce``: cross-entropy on the
            hard label argmax s*; ``mse``: squared error of the scores to the train judge's rewards,
            averaged over the candidates it judged; ``bce``: binary cross-entropy of ``sigmoid(scores)``
            to rewards in ``[0, 1]`` (0/1 task scores), as the matrix-factorisation router's.
        embedding_batch_size: queries per batch when embedding the splits in ``setup``.
        lr: learning rate of the default AdamW; a head alone wants far more than the paper's 1e-5 for
            fine-tuning (MiniLM quickstart, 10 epochs: val KL 0.016 at 1e-3, 0.015 at 3e-3 and at 1e-2).
        optimization: ``weight_decay``, ``warmup_ratio``, ``optimizer``, ``scheduler``: see
            :class:`~zooter.routers.base.TrainableRouter`.
    """

    def __init__(
        self,
        candidates: list[str] | None = None,
        encoder: str = encoders.TINY_DEBERTA,
        vocab_size: int | None = None,
        tokenizer_fingerprint: str | None = None,
        pooling: Literal["cls", "mean"] = "mean",
        head: ProbeHead = "linear",
        hidden_dim: int = 256,
        dropout: float = 0.1,
        loss: ProbeLoss = "kl",
        embedding_batch_size: int = 64,
        lr: float = 3e-3,
        **optimization: Any,
    ) -> None:
        for name, value, allowed in (("pooling", pooling, ("cls", "mean")), ("head", head, ("linear", "mlp")),
                                     ("loss", loss, ("kl", "ce", "mse", "bce"))):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; use one of {list(allowed)}")
        if hidden_dim < 1 or embedding_batch_size < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"need hidden_dim >= 1, embedding_batch_size >= 1 and 0 <= dropout < 1, got {hidden_dim}, "
                f"{embedding_batch_size}, {dropout}"
            )
        super().__init__(candidates, lr=lr, **optimization)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ENCODER_SEED)
            frozen = encoders.build_encoder(encoder, vocab_size)
        # outside the module tree: no parameters to optimize, nothing in the state_dict, and Lightning's
        # train()/eval() never switch its dropout on; _apply still moves it with the router
        self.__dict__["_frozen_encoder"] = frozen.requires_grad_(False).eval()
        width = frozen.config.hidden_size
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if head == "mlp":
            layers += [nn.Linear(width, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_dim
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, len(self.candidates))  # the candidate-specific layer (add_candidate)
        self._embeddings: dict[str, Tensor] = {}
        self._encoder_digest: str | None = None

    @property
    def encoder(self) -> PreTrainedModel:
        """The frozen encoder (in eval mode; not in ``parameters()`` nor ``state_dict()``)."""
        return self.__dict__["_frozen_encoder"]

    def _apply(self, fn: Any, recurse: bool = True) -> ProbeRouter:
        super()._apply(fn, recurse)
        frozen = self.__dict__.get("_frozen_encoder")
        if frozen is not None and recurse:
            frozen._apply(fn)
        return self

    # --------------------------------------------------------------------------------- scoring
    def embed(self, batch: dict[str, Any]) -> Tensor:
        """The frozen encoder's pooled vectors ``[batch, hidden_size]`` of ``input_ids``/``attention_mask``."""
        with torch.no_grad():
            mask = batch["attention_mask"]
            hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
            return encoders.pool(hidden, mask, self.hparams.pooling).float()

    def cached_embeddings(self, split: str, index: Tensor) -> Tensor:
        """Rows ``index`` of the embeddings ``setup`` computed for ``split``."""
        if split not in self._embeddings:
            raise RuntimeError(f"no embeddings of the {split!r} split: setup() embeds the data module's splits")
        table = self._embeddings[split]
        if table.device != self.device:
            table = self._embeddings[split] = table.to(self.device)
        return table[index.to(self.device)]

    def scores(self, batch: dict[str, Any]) -> Tensor:
        split = batch.get("split")
        vectors = self.embed(batch) if split is None else self.cached_embeddings(split, batch["index"])
        return self.head(self.body(vectors))

    def loss(self, batch: dict[str, Any]) -> Tensor:
        scores = self.scores(batch)
        if self.hparams.loss == "kl":
            return kl_divergence(scores, batch["target"], batch["judged"])
        if self.hparams.loss == "ce":
            return hard_label_cross_entropy(scores, batch["target"], batch["judged"])
        if batch.get("rewards") is None:
            raise ValueError(f"loss {self.hparams.loss!r} needs batch['rewards'] (the train judge's rewards)")
        return reward_regression(scores, batch["rewards"], self.hparams.loss)

    # the head's last layer holds one row per candidate, as the paper router's head: grow it the same way
    add_candidate = ZooterRouter.add_candidate

    # ---------------------------------------------------------------------------- the embeddings
    def setup(self, stage: str) -> None:
        """Embed every split of the data module once (or load the vectors from its cache)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "datasets"):
            raise ValueError("ProbeRouter embeds the data module's queries: train it with ZooterDataModule")
        self.embed_splits(datamodule, self.trainer.strategy.root_device)

    def embed_splits(self, datamodule: Any, device: torch.device | str | None = None) -> None:
        """Embeddings of every split in ``datamodule.datasets`` not embedded yet, from the cache under
        ``datamodule.hparams.cache_dir`` or computed on ``device`` (default: the router's) and saved there.

        Args:
            datamodule: a set-up :class:`~zooter.data.datamodule.ZooterDataModule`.
            device: where the encoder runs while embedding.
        """
        collate = RoutingCollator(datamodule.tokenizer)
        loaded: dict[Path, Tensor] = {}  # the predict split is the test split unless given: embed it once
        for split, dataset in datamodule.datasets.items():
            if split in self._embeddings:
                continue
            queries = datamodule.tables[split].queries
            if len(queries) != len(dataset):
                raise ValueError(f"split {split!r}: {len(queries)} queries but {len(dataset)} token rows")
            path = Path(datamodule.hparams.cache_dir) / f"probe-embeddings-{self.cache_key(datamodule, queries)}.npy"
            if path not in loaded:
                loaded[path] = self._load_or_embed(path, dataset.input_ids, collate, device, split)
            self._embeddings[split] = loaded[path]

    def cache_key(self, datamodule: Any, queries: list[str]) -> str:
        """The embeddings' cache key: encoder name and weights, tokenizer, ``max_length``, pooling, queries."""
        digest = hashlib.sha256()
        hp = self.hparams
        fields = (CACHE_VERSION, hp.encoder, self.encoder_digest(), datamodule.tokenizer_fingerprint,
                  datamodule.hparams.max_length, hp.pooling)  # fmt: skip
        digest.update("".join(f"{field}\0" for field in fields).encode())
        digest.update("".join(f"{query}\0" for query in queries).encode())
        return digest.hexdigest()[:20]

    def _load_or_embed(
        self, path: Path, input_ids: list[list[int]], collate: RoutingCollator, device: Any, split: str
    ) -> Tensor:
        shape = (len(input_ids), self.encoder.config.hidden_size)
        if path.is_file():
            vectors = np.load(path)
            if vectors.shape == shape:
                rank_zero_info(f"zooter probe: {split}: {shape[0]} embeddings loaded from {path}")
                return torch.from_numpy(vectors)
        start = time.perf_counter()
        vectors = self._embed_token_ids(input_ids, collate, device, split)
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.save(f, vectors)
        rank_zero_info(
            f"zooter probe: {split}: {shape[0]} queries embedded by {self.hparams.encoder} in "
            f"{time.perf_counter() - start:.1f} s, cached in {path}"
        )
        return torch.from_numpy(vectors)

    def _embed_token_ids(
        self, input_ids: list[list[int]], collate: RoutingCollator, device: Any, split: str
    ) -> np.ndarray:
        """Pooled vectors of token id lists, in batches of about one length; rows in input order."""
        from tqdm.auto import tqdm

        size = self.hparams.embedding_batch_size
        order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]))  # less padding
        out = np.zeros((len(input_ids), self.encoder.config.hidden_size), dtype=np.float32)
        home = self.device
        device = torch.device(device) if device is not None else home
        self.encoder.to(device)
        try:
            with torch.inference_mode():
                for start in tqdm(range(0, len(order), size), desc=f"embedding {split}", unit="batch", disable=None):
                    rows = order[start : start + size]
                    batch = collate([{"input_ids": input_ids[i]} for i in rows])
                    batch = {key: batch[key].to(device) for key in ("input_ids", "attention_mask")}
                    out[rows] = self.embed(batch).cpu().numpy()
        finally:
            self.encoder.to(home)
        return out

    def encoder_digest(self) -> str:
        """A short hash of the frozen encoder's weights (it never changes, so it is computed once)."""
        if self._encoder_digest is None:
            digest = hashlib.sha256()
            for name, tensor in self.encoder.state_dict().items():
                data = tensor.detach().cpu().contiguous()
                digest.update(f"{name}\0{data.dtype}\0{tuple(data.shape)}\0".encode())
                digest.update(data.reshape(-1).view(torch.uint8).numpy())
            self._encoder_digest = digest.hexdigest()[:16]
        return self._encoder_digest

    # ------------------------------------------------------------------------------ checkpoints
    def extra_checkpoint_state(self) -> dict[str, Any]:
        return {**EncoderRouter.extra_checkpoint_state(self), "encoder_digest": self.encoder_digest()}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        EncoderRouter.load_extra_checkpoint_state(self, state)  # the tokenizer check of the encoder routers
        saved = state.get("encoder_digest")
        if saved is not None and saved != self.encoder_digest():
            raise CheckpointMismatchError(
                f"the checkpoint's head was trained on encoder {self.hparams.encoder!r} with weights {saved}, "
                f"but it rebuilds with weights {self.encoder_digest()} (another release of the model, or of "
                "torch's random initialisation for tiny-deberta): retrain the probe"
            )
