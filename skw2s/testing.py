"""Tiny random-weight models for tests, built offline.

:func:`tiny_causal_lm` writes a small Llama-architecture causal LM and a byte-level BPE
tokenizer to a directory with ``save_pretrained``, so that tests go through the same
``from_pretrained`` path as real checkpoints. It takes well under two seconds and needs no
network. The same directory loads as a sequence classifier too (the head is new).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_PROMPTS", "tiny_causal_lm", "tiny_tokenizer"]

SAMPLE_PROMPTS = [
    "Question: Which gas do plants absorb?\nAnswer:",
    "Q: sky?",
    "Context: Energy can be neither created nor destroyed.\n"
    "Question: is energy conserved?\nAnswer:",
    "Question: What is the boiling point of water?\nAnswer:",
    "Question: Which is bigger?\nAnswer:",
]
"""Prompts of different lengths and shapes, shared by the scoring and decoding tests."""

_CORPUS = [
    "Question: Which gas do plants absorb for photosynthesis? Answer: carbon dioxide",
    "Q: What is the boiling point of water? A: one hundred degrees",
    "The quick brown fox jumps over the lazy dog.",
    "Context: Energy can be neither created nor destroyed.",
    "more less higher lower faster slower bigger smaller true false yes no",
    "oxygen nitrogen hydrogen helium carbon iron water sun moon earth",
    "0 1 2 3 4 5 6 7 8 9 A B C D",
]


def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer trained on a fixed sentence list (deterministic).

    Byte-level coverage means any text encodes; ``vocab_size`` must be at least 262.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    if vocab_size < 256 + len(specials) + 2:
        raise ValueError(f"vocab_size must be at least {256 + len(specials) + 2}; got {vocab_size}.")
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def tiny_causal_lm(
    directory,
    *,
    seed: int = 0,
    n_layers: int = 2,
    hidden_size: int = 32,
    vocab_size: int = 320,
) -> str:
    """Build a random-weight causal LM with its tokenizer and save both to ``directory``.

    Parameters
    ----------
    directory : str or Path
        Where to write the checkpoint (created if needed).
    seed : int, default=0
        Seeds the weights: the same seed gives the same model.
    n_layers, hidden_size : int
        Size of the Llama-architecture decoder.
    vocab_size : int, default=320
        Target vocabulary size of the byte-level BPE tokenizer. Two models built with different
        values have different vocabularies.

    Returns
    -------
    path : str
        ``directory``, ready for :func:`skw2s.models.load_causal_lm` or any estimator's
        ``model=`` parameter.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)
