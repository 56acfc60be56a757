"""Hugging Face language models for the pipeline: loading, chat-template prompts, length batches, generation.

Shared by ``zooter generate`` (candidate responses), ``zooter tag`` (the InsTag tagger) and ``zooter
score`` (reward models). torch and transformers are imported inside the functions, so importing this
module (and a command's ``--help``) stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase


# ---------------------------------------------------------------------------------------------- loading


def cuda_bf16() -> bool:
    """Whether there is a CUDA GPU and it supports bfloat16."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def device_and_dtype() -> tuple[torch.device, torch.dtype]:
    """The GPU in bfloat16 (float32 where it lacks bfloat16) when there is one, else the CPU in float32."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16 if cuda_bf16() else torch.float32
    return torch.device("cpu"), torch.float32


def load_causal_lm(
    name: str, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedTokenizerBase, Any]:
    """Tokenizer and causal LM of ``name`` (a hub id or a local directory), the model in eval mode.

    ``dtype`` None loads the weights in ``from_pretrained``'s default dtype; ``device`` None leaves the
    model where ``from_pretrained`` put it. Loading errors (``OSError``, ``ValueError``) propagate.
    """
    import transformers
    from packaging.version import Version
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"] = dtype
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    if device is not None:
        model = model.to(device)
    return tokenizer, model.eval()


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Pad with the end-of-sequence token when there is no pad token; False when there is neither."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer.pad_token is not None


def pad_left(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Set the tokenizer up for batched generation (left padding, see :func:`ensure_pad_token`)."""
    tokenizer.padding_side = "left"
    return ensure_pad_token(tokenizer)


# ---------------------------------------------------------------------------------------------- prompts


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer has a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt(tokenizer: PreTrainedTokenizerBase, query: str, response: str | None = None) -> tuple[str, bool]:
    """The text of one user message (and an assistant reply) and whether the tokenizer should still add
    its special tokens.

    With a chat template: the template applied to the user message plus the generation prompt, or to
    the user message and ``response`` (the template writes any BOS itself, so no special tokens are
    added). Without: the raw query.
    """
    if not has_chat_template(tokenizer):
        return query, True
    messages = [{"role": "user", "content": query}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=response is None)
    return text, False


# ---------------------------------------------------------------------------------------------- batches


def batches(indices: Sequence[int], batch_size: int) -> list[list[int]]:
    """``indices`` cut into consecutive batches of ``batch_size`` (the last may be shorter)."""
    return [list(indices[start : start + batch_size]) for start in range(0, len(indices), batch_size)]


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Item indices, longest first (ties in input order), in batches: similar lengths share a batch."""
    return batches(sorted(range(len(lengths)), key=lambda i: -lengths[i]), batch_size)


# ---------------------------------------------------------------------------------------------- generation


def context_limit(model: Any) -> int | None:
    """The model's context length in tokens, when its config states one."""
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(model.config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], add_special_tokens: bool, device: Any
) -> dict[str, torch.Tensor]:
    """One padded batch of prompts: ``input_ids`` and ``attention_mask`` on ``device``."""
    encoded = tokenizer(list(prompts), padding=True, add_special_tokens=add_special_tokens, return_tensors="pt")
    return {key: encoded[key].to(device) for key in ("input_ids", "attention_mask")}


def generate_batch(
    model: Any, tokenizer: PreTrainedTokenizerBase, inputs: dict[str, torch.Tensor], **options: Any
) -> list[str]:
    """Each prompt's continuation (new tokens only, special tokens skipped) by ``model.generate(**options)``."""
    import torch

    with torch.inference_mode():
        output = model.generate(**inputs, **options, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
