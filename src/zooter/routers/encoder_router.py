"""Routers on a text encoder: query -> encoder -> pooled vector (-> dropout), the base of the paper's
router and of every router family that fine-tunes an encoder."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

from zooter.routers import encoders
from zooter.routers.base import CheckpointMismatchError, TrainableRouter


class EncoderRouter(TrainableRouter):
    """A trainable router with a Hugging Face encoder: :meth:`embed` gives each query's pooled vector
    (``self.hidden_size`` wide); subclasses add their head (:meth:`scores`) and :meth:`loss`.

    Args:
        candidates: candidate names (linked from ``data.candidates``; stored in every checkpoint).
        encoder: ``tiny-deberta``, ``minilm`` or a hub id / local path (linked from ``data.encoder``).
        vocab_size: tokenizer size (linked from the data; used by ``tiny-deberta``).
        tokenizer_fingerprint: hash of the tokenizer the data module built (linked; checked on reload).
        pretrained: load pretrained weights (``False``: same architecture, random weights).
        encoder_config: overrides of encoder config fields, e.g. ``{"num_hidden_layers": 4}``.
        pooling: ``cls`` (first token, as RouterDC) or ``mean`` over non-padding tokens.
        dropout: dropout on the pooled vector.
        optimization: ``lr`` (paper: 1e-5), ``weight_decay`` (paper: 5e-7), ``warmup_ratio``, ``optimizer``,
            ``scheduler``: see :class:`~zooter.routers.base.TrainableRouter`.
    """

    def __init__(
        self,
        candidates: list[str] | None = None,
        encoder: str = encoders.TINY_DEBERTA,
        vocab_size: int | None = None,
        tokenizer_fingerprint: str | None = None,
        pretrained: bool = True,
        encoder_config: dict[str, Any] | None = None,
        pooling: Literal["cls", "mean"] = "cls",
        dropout: float = 0.1,
        **optimization: Any,
    ) -> None:
        super().__init__(candidates, **optimization)
        # from_pretrained returns a model in eval mode; Lightning keeps submodule modes, so reset it
        self.encoder = encoders.build_encoder(encoder, vocab_size, pretrained, encoder_config).train()
        self.dropout = nn.Dropout(dropout)
        self.hidden_size: int = self.encoder.config.hidden_size

    def embed(self, batch: dict[str, Any]) -> Tensor:
        """The pooled query vectors ``[batch, hidden_size]``, after dropout."""
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return self.dropout(encoders.pool(hidden, batch["attention_mask"], self.hparams.pooling))

    def extra_checkpoint_state(self) -> dict[str, Any]:
        return {"tokenizer_fingerprint": self.hparams.tokenizer_fingerprint}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        saved, current = state.get("tokenizer_fingerprint"), self.hparams.tokenizer_fingerprint
        if saved is not None and current is not None and saved != current:
            raise CheckpointMismatchError(
                f"the checkpoint was trained with tokenizer {saved}, but the data module built {current}; "
                "for tiny-deberta the tokenizer is trained on the training split: keep data.path, the split "
                "settings and data.tokenizer_vocab_size of the training run"
            )
