"""Speculative mixture decoding gives the tokens of plain greedy mixture decoding.

One expert drafts ``k`` tokens, the mixture verifies them in one forward per expert (or per
shared-base adapter group); see :func:`skw2s.hf.decoding.mixture_generate`. Whatever the drafter
proposes, the output must be the plain greedy tokens: full experts, stacked and peft-mixed LoRA
experts, batches of prompts of different lengths, EOS in the middle, ``k`` in {1, 3, 5},
``combine="logit"``, sliding-window attention. Timings are in ``benchmarks/bench_decoding.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skw2s.hf.models import load_causal_lm
from skw2s.hf.decoding import AdapterExpert, encode_prompts, mixture_generate
from skw2s.hf.decoding._batching import _pad_rows
from skw2s.hf.decoding.experts import _make_groups, _sessions
from skw2s.hf.decoding.speculative import _record_speculative_stats
from skw2s.hf.testing import SAMPLE_PROMPTS, tiny_tokenizer

PROMPTS = SAMPLE_PROMPTS


def _lora_model(path, configs, *, scale=1.0, seed=0):
    from peft import get_peft_model

    base, tok = load_causal_lm(path, device="cpu")
    names = list(configs)
    torch.manual_seed(seed)
    model = get_peft_model(base, configs[names[0]], adapter_name=names[0])
    for name in names[1:]:
        model.add_adapter(name, configs[name])
    if scale != 1.0:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.mul_(scale)
    model.eval()
    return model, [AdapterExpert(model, n) for n in names], tok


@pytest.fixture(scope="module")
def near_copies(tiny_lm):
    """Four small LoRA adapters on one base (small B): experts that mostly agree, as boosting
    rounds of one base do."""
    from peft import LoraConfig

    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "o_proj"],
                        init_lora_weights=False)
    return _lora_model(tiny_lm, {f"round{t}": config for t in range(1, 5)}, scale=0.05)


def _generate(models, alphas, tok, **kw):
    kw.setdefault("max_new_tokens", 12)
    return mixture_generate(models, alphas, tok, PROMPTS, **kw)


# -- same tokens as plain greedy decoding ----------------------------------------------------
@pytest.mark.parametrize("combine", ["prob", "logit"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_full_experts_same_tokens(tiny_experts, combine, k):
    models, tok = tiny_experts
    alphas = [0.5, 2.0, 1.0]
    ref = _generate(models, alphas, tok, combine=combine, eos_token_id=[])
    for batch_size in (2, 8):  # prompts of different lengths, left-padded together
        got = _generate(models, alphas, tok, combine=combine, eos_token_id=[],
                        batch_size=batch_size, speculative_k=k)
        assert got == ref
    got = _generate(models, alphas, tok, combine=combine, eos_token_id=[], speculative_k=k,
                    draft_expert=0)
    assert got == ref


@pytest.mark.parametrize("k", [1, 3, 5])
def test_eos_in_the_middle(tiny_experts, adapters, k):
    _, lora, tok = adapters
    (full, *_), _ = tiny_experts
    mixed = [lora[0], full, lora[2]]
    alphas = [1.0, 0.7, 1.6]
    free = _generate(mixed, alphas, tok, eos_token_id=[])
    eos = free[1][2]  # a token some row emits early: rows finish at different steps
    ref = _generate(mixed, alphas, tok, eos_token_id=eos, use_cache=False, batch_adapters=False)
    assert len({len(r) for r in ref}) > 1
    for drafter in (None, 1):
        got = _generate(mixed, alphas, tok, eos_token_id=eos, speculative_k=k,
                        draft_expert=drafter)
        assert got == ref
    # a budget that ends inside a drafted block
    ref = _generate(mixed, alphas, tok, eos_token_id=eos, max_new_tokens=4)
    assert _generate(mixed, alphas, tok, eos_token_id=eos, max_new_tokens=4,
                     speculative_k=k) == ref
    assert _generate(mixed, alphas, tok, eos_token_id=eos, max_new_tokens=1,
                     speculative_k=k) == [r[:1] for r in ref]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_shared_base_lora_experts_same_tokens(adapters, tiny_experts, k):
    model, lora, tok = adapters
    (full, *_), _ = tiny_experts
    mixed = [lora[0], full, lora[1], lora[2]]  # a full model between the adapters
    alphas = [1.0, 0.5, 2.0, 1.5]
    assert [g.mode for g in _make_groups(mixed, batch_adapters=True)] == ["stacked", None]
    for combine in ("prob", "logit"):
        ref = _generate(mixed, alphas, tok, combine=combine, eos_token_id=[])
        for drafter in (None, 0, 1, 3):  # an adapter of the stacked group, or the full model
            got = _generate(mixed, alphas, tok, combine=combine, eos_token_id=[],
                            speculative_k=k, draft_expert=drafter)
            assert got == ref
    ref = _generate(lora, [1, 2, 3], tok, eos_token_id=[], batch_adapters=False)
    assert _generate(lora, [1, 2, 3], tok, eos_token_id=[], batch_adapters=False,
                     speculative_k=k) == ref
    # the peft model is left as it was found: adapters on, no hooks
    layer = model.get_base_model().model.layers[0].self_attn.q_proj
    assert not layer.disable_adapters and not layer._forward_hooks


@pytest.mark.filterwarnings("ignore:`lora_bias=True` was passed")
def test_peft_mixed_batch_experts_same_tokens(tiny_lm):
    """Adapters that cannot be stacked run as peft mixed batches; one of them drafts alone."""
    from peft import LoraConfig

    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        lora_bias=True)
    _, lora, tok = _lora_model(tiny_lm, {"ad1": config, "ad2": config}, seed=1)
    assert _make_groups(lora, batch_adapters=True)[0].mode == "peft"
    ref = _generate(lora, [1, 2], tok, eos_token_id=[])
    for drafter in (0, 1):
        assert _generate(lora, [1, 2], tok, eos_token_id=[], speculative_k=3,
                         draft_expert=drafter) == ref


def test_sliding_window_model_same_tokens():
    """Sliding-window layers: the batch keeps its shortest accepted prefix (no holes)."""
    from transformers import MistralConfig, MistralForCausalLM

    tok = tiny_tokenizer()
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        config = MistralConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, sliding_window=6,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        models.append(MistralForCausalLM(config).eval())
    same = [models[0], models[0]]  # a mixture that agrees with its drafter
    for mix, alphas in ((models, [1.0, 2.0]), (same, [1.0, 2.0])):
        ref = _generate(mix, alphas, tok, eos_token_id=[], max_new_tokens=15)
        with _record_speculative_stats() as stats:
            got = _generate(mix, alphas, tok, eos_token_id=[], max_new_tokens=15,
                            speculative_k=4)
        assert got == ref
    assert stats.accepted == stats.drafted > 0


# -- the drafter and the work done -------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:`lora_bias=True` was passed")
@pytest.mark.parametrize("bias", [False, True])
def test_group_member_alone_equals_its_adapter(tiny_lm, bias):
    """A drafter inside a stacked or peft-mixed group runs its own adapter only."""
    from peft import LoraConfig

    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        lora_bias=bias)
    model, lora, tok = _lora_model(tiny_lm, {"ad1": config, "ad2": config, "ad3": config})
    rows = encode_prompts(tok, PROMPTS)
    ids = _pad_rows(rows, tok.pad_token_id, "left")
    mask = _pad_rows([[1] * len(r) for r in rows], 0, "left")
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.inference_mode():
        ref = [e(input_ids=ids, attention_mask=mask, position_ids=pos).logits for e in lora]
        (group,) = _make_groups(lora, batch_adapters=True)
        assert group.mode == ("peft" if bias else "stacked")
        with _sessions([group]):
            for e in range(3):
                logits, cache = group(ids, mask, pos, use_cache=True, member=e)
                assert logits.shape[0] == 1 and cache.get_seq_length() == ids.shape[1]
                assert cache.layers[0].keys.shape[0] == len(PROMPTS)
                torch.testing.assert_close(logits[0], ref[e], rtol=1e-4, atol=1e-4)
            both, _ = group(ids, mask, pos)  # the group is whole again
    for e in range(3):
        torch.testing.assert_close(both[e], ref[e], rtol=1e-4, atol=1e-4)


def test_near_copies_accept_most_drafts(near_copies):
    """Experts that mostly agree: most drafts are accepted, so far fewer verify steps."""
    _, lora, tok = near_copies
    alphas = [1.0, 1.5, 0.8, 1.2]
    ref = _generate(lora, alphas, tok, eos_token_id=[], max_new_tokens=16)
    with _record_speculative_stats() as stats:
        got = _generate(lora, alphas, tok, eos_token_id=[], max_new_tokens=16, speculative_k=4)
    assert got == ref
    s = stats.as_dict()
    assert s["acceptance_rate"] > 0.6 and s["tokens_per_row_step"] > 2.5
    # one stacked forward per verify step: the prompt pass + at most ceil(15 / 5) ... per batch
    assert s["verify_forwards"] < 16
    assert s["draft_forwards"] <= 4 * (s["verify_forwards"] - 1)


def test_one_expert_accepts_every_draft(tiny_experts):
    (model, *_), tok = tiny_experts
    ref = mixture_generate([model], [1.0], tok, PROMPTS, max_new_tokens=10, eos_token_id=[])
    with _record_speculative_stats() as stats:
        got = mixture_generate([model], [1.0], tok, PROMPTS, max_new_tokens=10,
                               eos_token_id=[], speculative_k=3)
    assert got == ref and stats.accepted == stats.drafted > 0


# -- parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, match",
    [
        ({"speculative_k": 0}, "speculative_k must be None or a positive integer"),
        ({"speculative_k": -2}, "speculative_k must be None or a positive integer"),
        ({"speculative_k": 2.0}, "speculative_k must be None or a positive integer"),
        ({"speculative_k": True}, "speculative_k must be None or a positive integer"),
        ({"speculative_k": 2, "do_sample": True}, "speculative_k supports greedy decoding"),
        ({"speculative_k": 2, "use_cache": False}, "speculative_k needs use_cache=True"),
        ({"speculative_k": 2, "draft_expert": 3}, "draft_expert must be None or an index"),
        ({"speculative_k": 2, "draft_expert": -1}, "draft_expert must be None or an index"),
        ({"speculative_k": 2, "draft_expert": "0"}, "draft_expert must be None or an index"),
        ({"draft_expert": 0}, "draft_expert=0 is only used with speculative decoding"),
    ],
)
def test_bad_parameters(tiny_experts, kw, match):
    models, tok = tiny_experts
    with pytest.raises(ValueError, match=match):
        mixture_generate(models, [1, 2, 3], tok, PROMPTS[:1], max_new_tokens=2, **kw)


def test_estimator_generate(tiny_lm):
    from skw2s.estimators.generator import LLMGenerator
    from skw2s import TokenAdaBoostGenerator

    X = [p for p in PROMPTS for _ in range(2)]
    y = [" carbon dioxide", " blue", " yes", " one hundred", " A"] * 2
    weak = LLMGenerator(tiny_lm, mode="lora", lr=2e-2, n_epochs=1, batch_size=8, lora_r=4,
                        device="cpu", max_new_tokens=6)
    boost = TokenAdaBoostGenerator(weak, n_estimators=2, random_state=0).fit(X, y)
    ref = boost.generate(PROMPTS, return_tokens=True)
    assert boost.generate(PROMPTS, return_tokens=True, speculative_k=3) == ref
    assert boost.generate(PROMPTS, return_tokens=True, speculative_k=2, draft_expert=0) == ref
    staged = list(boost.staged_generate(PROMPTS, return_tokens=True, speculative_k=2))
    assert staged == list(boost.staged_generate(PROMPTS, return_tokens=True))
    with pytest.raises(ValueError, match="speculative_k"):
        boost.generate(PROMPTS, speculative_k=2, do_sample=True)
    assert "speculative_k" not in boost.get_params()


def test_stats_recorder_is_scoped(tiny_experts):
    models, tok = tiny_experts
    with _record_speculative_stats() as outer:
        _generate(models, [1, 1, 1], tok, eos_token_id=[], max_new_tokens=4, speculative_k=2)
        with _record_speculative_stats() as inner:
            _generate(models, [1, 1, 1], tok, eos_token_id=[], max_new_tokens=4,
                      speculative_k=2)
    assert inner.row_steps > 0 and outer.row_steps == 2 * inner.row_steps
    _generate(models, [1, 1, 1], tok, eos_token_id=[], max_new_tokens=4, speculative_k=2)
    assert outer.row_steps == 2 * inner.row_steps
    assert np.isnan(type(outer)().as_dict()["acceptance_rate"])
