"""Every fast path of skw2s.hf.decoding gives the scores or tokens of its plain reference.

- prompt once (``share_prompts=True``) against whole sequences (``share_prompts=False``);
- LoRA experts of one base in one forward (``batch_adapters=True``: stacked adapters, or
  peft's mixed-adapter batches when stacking is not possible) against adapters one by one;
- cached decoding that drops finished rows against the no-cache reference.

Timings are in ``benchmarks/``; these tests only check results and the shape of the work
(how many forwards, how many rows).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skw2s.hf.models import load_causal_lm
from skw2s.hf.decoding import (
    choice_nll,
    choice_nll_mixture,
    mixture_generate,
    token_predictions,
    token_predictions_mixture,
)
from skw2s.hf.decoding.experts import _make_groups
from skw2s.hf.decoding.teacher_forced import _length_chunks
from skw2s.hf.testing import SAMPLE_PROMPTS
from skw2s.hf.training import encode_sft

PROMPTS = SAMPLE_PROMPTS
CHOICES = [
    ["carbon dioxide", "oxygen", "a", "nitrogen and some other gases"],
    ["blue", "green", "red"],
    ["yes", "no"],
    ["one hundred degrees", "zero", "fifty degrees when the pressure is low", "9"],
    ["A", "B"],
]
ANSWERS = [" carbon dioxide", " blue", " yes it is", " one hundred degrees", " A"]


def _flat(rows):
    return np.concatenate(rows)


class _Recorder:
    """Forward pre-hook recording (rows, width) of every call of a module."""

    def __init__(self, module):
        self.calls = []
        self.handle = module.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.calls.append(tuple(ids.shape))

    def remove(self):
        self.handle.remove()


# -- prompt once ------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_prompt_once_choice_nll_equals_whole_sequences(tiny_experts, reduction):
    (model, *_), tok = tiny_experts
    ref = choice_nll(model, tok, PROMPTS, CHOICES, reduction=reduction, share_prompts=False)
    for batch_size in (1, 2, 8):
        got = choice_nll(model, tok, PROMPTS, CHOICES, reduction=reduction,
                         batch_size=batch_size)
        assert [len(r) for r in got] == [len(c) for c in CHOICES]
        np.testing.assert_allclose(_flat(got), _flat(ref), rtol=1e-5, atol=1e-5)


def test_prompt_once_with_prompts_truncated_per_option(tiny_experts):
    """A long prompt is cut to fit each option: options of one question can then have
    different prompt tokens, and must still get the plain path's scores."""
    (model, *_), tok = tiny_experts
    prompts = ["word " * 40 + "Question: which?\nAnswer:", "Q: sky?"]
    choices = [["a", "a much much longer option with many tokens"], ["blue", "green"]]
    with pytest.warns(UserWarning, match="truncated"):
        ref = choice_nll(model, tok, prompts, choices, max_length=24, share_prompts=False)
    with pytest.warns(UserWarning, match="truncated"):
        got = choice_nll(model, tok, prompts, choices, max_length=24)
    np.testing.assert_allclose(_flat(got), _flat(ref), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("combine", ["prob", "logit"])
def test_prompt_once_mixture_every_stage_equals_plain(tiny_experts, combine):
    models, tok = tiny_experts
    alphas = [0.5, 2.0, 1.0]
    ref = choice_nll_mixture(models, alphas, tok, PROMPTS, CHOICES, combine=combine,
                             staged=True, share_prompts=False)
    got = choice_nll_mixture(models, alphas, tok, PROMPTS, CHOICES, combine=combine,
                             staged=True, batch_size=3)
    assert len(got) == len(ref) == 3
    for g, r in zip(got, ref):
        np.testing.assert_allclose(_flat(g), _flat(r), rtol=1e-5, atol=1e-5)


def test_token_predictions_fast_paths_equal_plain(tiny_experts):
    models, tok = tiny_experts
    # one answer per prompt (whole sequences, logits on the answer columns only) ...
    enc = encode_sft(tok, PROMPTS, ANSWERS)
    # ... and several answers per prompt (prompt once, then the answers from its cache)
    shared = encode_sft(tok, [p for p in PROMPTS for _ in range(2)],
                        [x for a in ANSWERS for x in (a, a + " and more")])
    for data in (enc, shared):
        for batch_size in (1, 4):
            fast = token_predictions(models[0], tok, data, batch_size=batch_size)
            plain = token_predictions(models[0], tok, data, share_prompts=False)
            for f, p in zip(fast, plain):
                np.testing.assert_array_equal(f, p)
        fast = token_predictions_mixture(models, [1.0, 0.3, 2.0], tok, data, staged=True)
        plain = token_predictions_mixture(models, [1.0, 0.3, 2.0], tok, data, staged=True,
                                          share_prompts=False)
        for stage_f, stage_p in zip(fast, plain):
            for f, p in zip(stage_f, stage_p):
                np.testing.assert_array_equal(f, p)


def test_choice_scoring_encodes_each_prompt_once(tiny_experts):
    (model, *_), tok = tiny_experts
    rec = _Recorder(model)
    try:
        choice_nll(model, tok, PROMPTS, CHOICES, batch_size=len(PROMPTS))
    finally:
        rec.remove()
    enc = encode_sft(tok, [p for p, c in zip(PROMPTS, CHOICES) for _ in c],
                     [" " + o for c in CHOICES for o in c], append_eos=False)
    prompt_width = max(e.answer_start for e in enc)
    # first call: the prompts, one row per question
    assert rec.calls[0] == (len(PROMPTS), prompt_width)
    # then only option tokens: one row per option longer than one token, never the prompt
    continuation = rec.calls[1:]
    multi = [e.n_answer_tokens for e in enc if e.n_answer_tokens > 1]
    assert sum(rows for rows, _ in continuation) == len(multi)
    assert sum(rows * width for rows, width in continuation) < sum(
        e.answer_start + e.n_answer_tokens for e in enc
    )
    assert all(width <= max(multi) - 1 for _, width in continuation)


def test_length_chunks_cover_rows_and_bound_padding():
    lengths = [20, 1, 2, 1, 19, 3, 1, 1, 2, 18]
    chunks = _length_chunks(lengths, overhead=4)
    flat = [i for c in chunks for i in c]
    assert sorted(flat) == list(range(len(lengths)))
    for c in chunks:
        assert [lengths[i] for i in c] == sorted((lengths[i] for i in c), reverse=True)
    padded = sum(len(c) * lengths[c[0]] for c in chunks)
    assert len(chunks) > 1 and padded < len(lengths) * max(lengths)
    assert _length_chunks([3, 3, 3], overhead=4) == [[0, 1, 2]]
    assert _length_chunks([5], overhead=0) == [[0]]


# -- LoRA experts in one forward -----------------------------------------------------------
def test_adapters_are_stacked_when_possible(adapters, tiny_experts):
    model, lora, _ = adapters
    (full, *_), _ = tiny_experts
    groups = _make_groups([lora[0], full, lora[1], lora[2]], batch_adapters=True)
    assert [(g.mode, g.members) for g in groups] == [("stacked", [0, 2, 3]), (None, [1])]
    assert [g.mode for g in _make_groups(lora, batch_adapters=False)] == [None] * 3
    assert _make_groups(lora[:1], batch_adapters=True)[0].mode is None


def test_stacked_adapters_equal_adapters_one_by_one(adapters, tiny_experts):
    model, lora, tok = adapters
    (full, *_), _ = tiny_experts
    mixed = [lora[0], full, lora[1], lora[2]]  # a full model between the adapters
    alphas = [1.0, 0.5, 2.0, 1.5]
    enc = encode_sft(tok, PROMPTS, ANSWERS)
    nll_ref = choice_nll_mixture(mixed, alphas, tok, PROMPTS, CHOICES, staged=True,
                                 batch_adapters=False, share_prompts=False)
    pred_ref = token_predictions_mixture(mixed, alphas, tok, enc, batch_adapters=False)
    gen_ref = mixture_generate(mixed, alphas, tok, PROMPTS, max_new_tokens=8, use_cache=False,
                               batch_adapters=False)
    model.set_adapter("round2")
    nll = choice_nll_mixture(mixed, alphas, tok, PROMPTS, CHOICES, staged=True)
    for g, r in zip(nll, nll_ref):
        np.testing.assert_allclose(_flat(g), _flat(r), rtol=1e-5, atol=1e-5)
    for g, r in zip(token_predictions_mixture(mixed, alphas, tok, enc), pred_ref):
        np.testing.assert_array_equal(g, r)
    assert mixture_generate(mixed, alphas, tok, PROMPTS, max_new_tokens=8) == gen_ref
    # the peft model is left as it was found: adapters on, no hooks, same active adapter
    assert model.active_adapter == "round2"
    layer = model.get_base_model().model.layers[0].self_attn.q_proj
    assert not layer.disable_adapters and not layer._forward_hooks


@pytest.mark.filterwarnings("ignore:`lora_bias=True` was passed")
def test_peft_mixed_batch_when_adapters_cannot_be_stacked(tiny_lm):
    """An adapter with a LoRA bias is not stacked; peft's mixed batches run it instead."""
    from peft import LoraConfig, get_peft_model

    from skw2s.hf.decoding import AdapterExpert

    base, tok = load_causal_lm(tiny_lm, device="cpu")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        lora_bias=True)
    torch.manual_seed(1)
    model = get_peft_model(base, config, adapter_name="a").eval()
    model.add_adapter("b", config)
    lora = [AdapterExpert(model, "a"), AdapterExpert(model, "b")]
    assert _make_groups(lora, batch_adapters=True)[0].mode == "peft"
    ref = choice_nll_mixture(lora, [1, 2], tok, PROMPTS, CHOICES, batch_adapters=False)
    got = choice_nll_mixture(lora, [1, 2], tok, PROMPTS, CHOICES)
    np.testing.assert_allclose(_flat(got), _flat(ref), rtol=1e-5, atol=1e-5)
    ref = mixture_generate(lora, [1, 2], tok, PROMPTS, max_new_tokens=6, batch_adapters=False)
    assert mixture_generate(lora, [1, 2], tok, PROMPTS, max_new_tokens=6) == ref


def test_one_forward_per_step_for_all_adapters(adapters):
    model, lora, tok = adapters
    rec = _Recorder(model.get_base_model())
    try:
        mixture_generate(lora, [1, 1, 1], tok, PROMPTS[:2], max_new_tokens=5, eos_token_id=[])
        batched = list(rec.calls)
        rec.calls.clear()
        mixture_generate(lora, [1, 1, 1], tok, PROMPTS[:2], max_new_tokens=5, eos_token_id=[],
                         batch_adapters=False)
        one_by_one = list(rec.calls)
    finally:
        rec.remove()
    assert len(batched) == 5 and {rows for rows, _ in batched} == {3 * 2}
    assert batched[1:] == [(6, 1)] * 4  # one new token per row and adapter, one cache
    assert len(one_by_one) == 15


# -- cached decoding ---------------------------------------------------------------------------
def test_finished_rows_leave_the_batch(adapters, tiny_experts):
    model, lora, tok = adapters
    (full, *_), _ = tiny_experts
    mixed = [lora[0], full, lora[2]]
    alphas = [1.0, 0.7, 1.6]
    free = mixture_generate(mixed, alphas, tok, PROMPTS, max_new_tokens=10, eos_token_id=[])
    eos = free[1][2]  # a token some row emits early: rows finish at different steps
    ref = mixture_generate(mixed, alphas, tok, PROMPTS, max_new_tokens=10, eos_token_id=eos,
                           use_cache=False, batch_adapters=False)
    assert len({len(r) for r in ref}) > 1
    rec = _Recorder(full)
    try:
        got = mixture_generate(mixed, alphas, tok, PROMPTS, max_new_tokens=10, eos_token_id=eos)
    finally:
        rec.remove()
    assert got == ref
    rows = [r for r, _ in rec.calls]
    assert rows[0] == len(PROMPTS) and rows == sorted(rows, reverse=True) and rows[-1] < rows[0]


@pytest.mark.cuda
def test_fast_paths_on_cuda(tiny_lm):
    from peft import LoraConfig, get_peft_model

    from skw2s.hf.decoding import AdapterExpert

    base, tok = load_causal_lm(tiny_lm, device="cuda", dtype="float32")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config, adapter_name="a").eval()
    model.add_adapter("b", config)
    lora = [AdapterExpert(model, "a"), AdapterExpert(model, "b")]
    ref = choice_nll_mixture(lora, [1, 2], tok, PROMPTS, CHOICES, batch_adapters=False,
                             share_prompts=False)
    got = choice_nll_mixture(lora, [1, 2], tok, PROMPTS, CHOICES)
    np.testing.assert_allclose(_flat(got), _flat(ref), rtol=1e-4, atol=1e-4)
    ref = mixture_generate(lora, [1, 2], tok, PROMPTS, max_new_tokens=6, batch_adapters=False,
                           use_cache=False)
    assert mixture_generate(lora, [1, 2], tok, PROMPTS, max_new_tokens=6) == ref


@pytest.mark.real_model
def test_fast_paths_on_smollm2(smollm2_path):
    from peft import LoraConfig, get_peft_model

    from skw2s.hf.decoding import AdapterExpert

    model, tok = load_causal_lm(smollm2_path, device="cpu")
    ref = choice_nll(model, tok, PROMPTS, CHOICES, share_prompts=False)
    got = choice_nll(model, tok, PROMPTS, CHOICES)
    np.testing.assert_allclose(_flat(got), _flat(ref), rtol=1e-4, atol=1e-3)
    assert [np.argmin(r) for r in got] == [np.argmin(r) for r in ref]
    config = LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, config, adapter_name="round1")
    peft_model.add_adapter("round2", config)
    with torch.no_grad():  # small adapters: the outputs stay those of a language model
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.05)
    peft_model.eval()
    lora = [AdapterExpert(peft_model, "round1"), AdapterExpert(peft_model, "round2")]
    ref = mixture_generate(lora, [1.0, 2.0], tok, PROMPTS, max_new_tokens=8, eos_token_id=[],
                           batch_adapters=False)
    assert mixture_generate(lora, [1.0, 2.0], tok, PROMPTS, max_new_tokens=8,
                            eos_token_id=[]) == ref
