"""Tiny random-weight models for tests, built offline.

:func:`tiny_causal_lm` writes a small Llama-architecture causal LM and a byte-level BPE
tokenizer to a directory with ``save_pretrained``, so that tests go through the same
``from_pretrained`` path as real checkpoints. It takes well under two seconds and needs no
network. The same directory loads as a sequence classifier too (the head is new).
:func:`tiny_gguf` writes the same model as a float32 GGUF file, as llama.cpp lays it out, for
the GGUF-file model specs.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_PROMPTS", "tiny_causal_lm", "tiny_gguf", "tiny_tokenizer"]

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
        raise ValueError(
            f"vocab_size must be at least {256 + len(specials) + 2}; got {vocab_size}.")
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


def _tiny_llama(*, seed, n_layers, hidden_size, vocab_size):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

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
    return model, tokenizer


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
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _tiny_llama(
        seed=seed, n_layers=n_layers, hidden_size=hidden_size, vocab_size=vocab_size
    )
    from .offline import quiet_transformers_progress

    with quiet_transformers_progress():
        model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)


def _llama_cpp_permute(weight, n_head: int):
    """The row order llama.cpp stores Llama's q/k projections in (rotary halves interleaved);
    transformers' GGUF reader undoes it."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def tiny_gguf(
    path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    hidden_size: int = 32,
    vocab_size: int = 320,
) -> str:
    """Write the random-weight model of :func:`tiny_causal_lm` as a float32 GGUF file.

    The file has llama.cpp's layout (``llama`` architecture, ``gpt2`` byte-level tokenizer,
    permuted q/k rows), so that it goes through the same GGUF reader as real files. With the same
    arguments, it holds the same weights and vocabulary as ``tiny_causal_lm(dir, seed=...)``.

    Parameters
    ----------
    path : str or Path
        The ``.gguf`` file to write (its directory is created if needed).
    seed, n_layers, hidden_size, vocab_size
        As in :func:`tiny_causal_lm`.

    Returns
    -------
    path : str
        The file written.
    """
    import json

    import gguf

    model, tokenizer = _tiny_llama(
        seed=seed, n_layers=n_layers, hidden_size=hidden_size, vocab_size=vocab_size
    )
    config = model.config
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("skw2s tiny llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    specials = set(tokenizer.all_special_tokens)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types(
        [
            gguf.TokenType.CONTROL if token in specials else gguf.TokenType.NORMAL
            for token, _ in vocab
        ]
    )
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)

    state = {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for layer in range(config.num_hidden_layers):
        for hf_name, gguf_name in per_layer.items():
            names[f"model.layers.{layer}.{hf_name}.weight"] = f"blk.{layer}.{gguf_name}.weight"
    for hf_name, gguf_name in names.items():
        weight = state[hf_name]
        if gguf_name.endswith("attn_q.weight"):
            weight = _llama_cpp_permute(weight, config.num_attention_heads)
        elif gguf_name.endswith("attn_k.weight"):
            weight = _llama_cpp_permute(weight, config.num_key_value_heads)
        writer.add_tensor(gguf_name, weight.copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)
