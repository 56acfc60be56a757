"""Tiny Hugging Face models built from configs (random weights, no download) for offline tests.

Each builder saves a model and its tokenizer with ``save_pretrained`` into a directory, so the code
under test loads them exactly as it would load a hub model: ``from_pretrained(directory)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from zooter.routers.encoders import train_wordpiece

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
WORDS = "<|user|> <|assistant|> the a of to and in is it you that for on with as are this be at by or answer code math"


def _tokenizer(texts: Sequence[str], chat_template: bool):
    tokenizer = train_wordpiece([*texts, WORDS], vocab_size=512)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_causal_lm(directory: Path, texts: Sequence[str] = (), seed: int = 0, chat_template: bool = True) -> Path:
    """A 2-layer GPT-2 with a WordPiece tokenizer (and, optionally, a chat template)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _tokenizer(texts, chat_template)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return Path(directory)


def tiny_reward_model(directory: Path, texts: Sequence[str] = (), seed: int = 0, chat_template: bool = False) -> Path:
    """A 2-layer BERT sequence classifier with one output (a reward) and a WordPiece tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = _tokenizer(texts, chat_template)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, num_labels=1, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return Path(directory)
