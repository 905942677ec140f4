"""skw2s.hf.decoding: teacher-forced scoring and (mixture) decoding against plain unbatched
references."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from skw2s.hf.models import load_causal_lm, load_tokenizer
from skw2s.hf.decoding import (
    AdapterExpert,
    answer_token_errors,
    choice_nll,
    choice_nll_mixture,
    encode_prompts,
    mixture_generate,
    token_predictions,
    token_predictions_mixture,
)
from skw2s.hf.testing import SAMPLE_PROMPTS, tiny_causal_lm
from skw2s.hf.training import encode_sft

PROMPTS = SAMPLE_PROMPTS[:3]
ANSWERS = [" carbon dioxide", " blue", " yes it is"]
CHOICES = [["carbon dioxide", "oxygen"], ["blue", "green", "red"], ["yes", "no"]]


@pytest.fixture(scope="module")
def experts(tiny_lm, tmp_path_factory):
    """Three tiny random LMs sharing one tokenizer (different weights)."""
    paths = [tiny_lm] + [
        tiny_causal_lm(tmp_path_factory.mktemp(f"expert{s}"), seed=s) for s in (1, 2)
    ]
    loaded = [load_causal_lm(p, device="cpu") for p in paths]
    return [m for m, _ in loaded], loaded[0][1]


def _logp(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)


def test_token_predictions_match_unbatched_forward(experts):
    (model, *_), tok = experts
    enc = encode_sft(tok, PROMPTS, ANSWERS)
    for batch_size in (1, 2, 8):
        preds = token_predictions(model, tok, enc, batch_size=batch_size)
        for ex, p in zip(enc, preds):
            ref = _logp(model, ex.input_ids)[ex.answer_start - 1 : -1].argmax(-1).numpy()
            np.testing.assert_array_equal(p, ref)
    incorrect, lengths = answer_token_errors(enc, preds)
    assert lengths.tolist() == [ex.n_answer_tokens for ex in enc]
    assert incorrect.shape == (lengths.sum(),) and set(np.unique(incorrect)) <= {0.0, 1.0}


def test_mixture_token_predictions_match_manual_mixture(experts):
    models, tok = experts
    alphas = np.array([0.5, 2.0, 1.0])
    enc = encode_sft(tok, PROMPTS, ANSWERS)
    staged = token_predictions_mixture(models, alphas, tok, enc, batch_size=2, staged=True)
    assert len(staged) == 3
    final = token_predictions_mixture(models, alphas, tok, enc, batch_size=3)
    for a, b in zip(staged[-1], final):
        np.testing.assert_array_equal(a, b)
    w = alphas / alphas.sum()
    for ex, p in zip(enc, final):
        probs = sum(
            wi * _logp(m, ex.input_ids)[ex.answer_start - 1 : -1].exp()
            for wi, m in zip(w, models)
        )
        np.testing.assert_array_equal(p, probs.argmax(-1).numpy())
    # stage 1 is the first expert alone
    single = token_predictions(models[0], tok, enc)
    for a, b in zip(staged[0], single):
        np.testing.assert_array_equal(a, b)


def _manual_choice_nll(model, tok, prompt, choice):
    ex = encode_sft(tok, [prompt], [" " + choice], append_eos=False)[0]
    lp = _logp(model, ex.input_ids)[ex.answer_start - 1 : -1]
    target = torch.tensor(ex.input_ids[ex.answer_start :])
    return -lp[torch.arange(len(target)), target].sum().item(), len(target)


def test_choice_nll_matches_manual_sum_and_mean(experts):
    (model, *_), tok = experts
    total = choice_nll(model, tok, PROMPTS, CHOICES, batch_size=3)
    mean = choice_nll(model, tok, PROMPTS, CHOICES, reduction="mean", batch_size=1)
    assert [len(r) for r in total] == [2, 3, 2]
    for p, c, row_sum, row_mean in zip(PROMPTS, CHOICES, total, mean):
        for option, s, m in zip(c, row_sum, row_mean):
            ref, n = _manual_choice_nll(model, tok, p, option)
            assert s == pytest.approx(ref, rel=1e-4, abs=1e-4)
            assert m == pytest.approx(ref / n, rel=1e-4, abs=1e-4)
    with pytest.raises(ValueError, match="reduction"):
        choice_nll(model, tok, PROMPTS, CHOICES, reduction="max")


def test_choice_nll_mixture_is_minus_log_of_mixed_probability(experts):
    models, tok = experts
    alphas = [1.0, 3.0, 0.5]
    w = np.array(alphas) / sum(alphas)
    nll = choice_nll_mixture(models[:2], alphas[:2], tok, PROMPTS[:1], CHOICES[:1])
    ex = encode_sft(tok, PROMPTS[:1], [" " + CHOICES[0][0]], append_eos=False)[0]
    target = torch.tensor(ex.input_ids[ex.answer_start :])
    w2 = np.array(alphas[:2]) / sum(alphas[:2])
    rows = torch.arange(len(target))
    p = sum(
        wi * _logp(m, ex.input_ids)[ex.answer_start - 1 : -1].exp()[rows, target]
        for wi, m in zip(w2, models[:2])
    )
    assert nll[0][0] == pytest.approx(-torch.log(p).sum().item(), rel=1e-4)
    staged = choice_nll_mixture(models, alphas, tok, PROMPTS, CHOICES, staged=True)
    full = choice_nll_mixture(models, w, tok, PROMPTS, CHOICES)  # weights are normalised
    for a, b in zip(staged[-1], full):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    logit = choice_nll_mixture(models, alphas, tok, PROMPTS, CHOICES, combine="logit")
    assert not np.allclose(np.concatenate(logit), np.concatenate(full))


def _reference_generate(models, alphas, tok, prompts, max_new_tokens, eos, combine="prob"):
    """One prompt at a time, no padding, no cache: every expert recomputes the whole prefix."""
    w = torch.tensor(alphas, dtype=torch.float64)
    w = w / w.sum()
    out = []
    for ids in encode_prompts(tok, prompts):
        seq, gen = list(ids), []
        for _ in range(max_new_tokens):
            logits = torch.stack([_raw_logits(m, seq) for m in models])
            if combine == "prob":
                mixed = (w[:, None] * logits.double().softmax(-1)).sum(0)
            else:
                mixed = (w[:, None] * logits.double()).sum(0)
            token = int(mixed.argmax())
            if token in eos:
                break
            gen.append(token)
            seq.append(token)
        out.append(gen)
    return out


def _raw_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


@pytest.mark.parametrize("combine", ["prob", "logit"])
def test_cached_mixture_decoding_matches_plain_reference(experts, combine):
    models, tok = experts
    alphas = [1.0, 0.7, 1.6]
    # Pick a token the reference emits early in one row as "EOS", so that rows finish at
    # different steps and the per-row EOS handling is exercised.
    free = _reference_generate(models, alphas, tok, PROMPTS, 10, eos=set(), combine=combine)
    eos = free[1][2]
    ref = _reference_generate(models, alphas, tok, PROMPTS, 10, eos={eos}, combine=combine)
    assert len({len(r) for r in ref}) > 1, "rows should finish at different steps"
    for use_cache in (True, False):
        got = mixture_generate(
            models, alphas, tok, PROMPTS, combine=combine, max_new_tokens=10, batch_size=3,
            use_cache=use_cache, eos_token_id=eos,
        )
        assert got == ref
    # batch composition does not change greedy results
    one_by_one = mixture_generate(
        models, alphas, tok, PROMPTS, combine=combine, max_new_tokens=10, batch_size=1,
        eos_token_id=eos,
    )
    assert one_by_one == ref


def test_sampling_is_seeded_and_validated(experts):
    models, tok = experts
    kw = dict(max_new_tokens=6, do_sample=True, temperature=1.5, batch_size=2)
    a = mixture_generate(models, [1, 1, 1], tok, PROMPTS, random_state=3, **kw)
    b = mixture_generate(models, [1, 1, 1], tok, PROMPTS, random_state=3, **kw)
    c = mixture_generate(models, [1, 1, 1], tok, PROMPTS, random_state=4, **kw)
    assert a == b and a != c
    assert all(len(r) <= 6 for r in a)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        mixture_generate(models, [1, 1, 1], tok, PROMPTS, do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        mixture_generate(models, [1, 1, 1], tok, PROMPTS, max_new_tokens=0)
    with pytest.raises(ValueError, match="2 weights"):
        mixture_generate(models, [1, 1], tok, PROMPTS)
    with pytest.raises(ValueError, match="finite and > 0"):
        mixture_generate(models, [1, 0, 1], tok, PROMPTS)


def test_long_prompt_is_truncated_from_the_left_with_warning(experts):
    (model, *_), tok = experts
    long = "word " * 200 + "END"
    with pytest.warns(UserWarning, match="truncated from the left"):
        ids = encode_prompts(tok, [long], max_length=16)[0]
    assert len(ids) == 16 and tok.decode(ids).endswith("END")
    with pytest.warns(UserWarning, match="truncated from the left"):
        out = mixture_generate([model], [1.0], tok, [long], max_new_tokens=2, max_length=16)
    assert len(out[0]) <= 2


def test_adapter_experts_share_one_base(experts, tiny_lm):
    from peft import LoraConfig, get_peft_model

    _, tok = experts
    base, _ = load_causal_lm(tiny_lm, device="cpu")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config, adapter_name="round1")
    peft_model.add_adapter("round2", config)
    a, b = AdapterExpert(peft_model, "round1"), AdapterExpert(peft_model, "round2")
    enc = encode_sft(tok, PROMPTS, ANSWERS)
    pa, pb = token_predictions(a, tok, enc), token_predictions(b, tok, enc)
    # interleaved calls switch adapters: each expert gives what it gives alone
    mixed = token_predictions_mixture([a, b], [1.0, 1e-9], tok, enc)
    for x, y in zip(mixed, pa):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(pa, pb))
    ref = _reference_generate([a, b], [1.0, 2.0], tok, PROMPTS, 5, eos={tok.eos_token_id})
    assert mixture_generate([a, b], [1.0, 2.0], tok, PROMPTS, max_new_tokens=5) == ref


def test_generate_refuses_experts_of_another_vocabulary(experts, tiny_lm, tiny_lm_other_vocab):
    """Experts whose vocabularies differ are refused up front with an error that names them
    (they used to fail inside an embedding with an IndexError)."""
    (model, second, _), tok = experts
    other, other_tok = load_causal_lm(tiny_lm_other_vocab, device="cpu")
    assert len(tok) == 320 and len(other_tok) == 300
    with pytest.raises(ValueError, match=r"expert 1 \(LlamaForCausalLM '.*tiny-lm-other.*'\): "
                                         r"300 tokens"):
        mixture_generate([model, other], [1.0, 1.0], tok, PROMPTS, max_new_tokens=2)
    # one expert is checked against the tokenizer too
    with pytest.raises(ValueError, match=r"holds the tokenizer's 320 tokens.*expert 0 .*: 300 "):
        mixture_generate([other], [1.0], tok, PROMPTS, max_new_tokens=2)
    # with one tokenizer per expert, the vocabularies themselves are compared
    with pytest.raises(ValueError, match="the tokenizer of expert 1 \\(300 tokens\\) differs"):
        mixture_generate([model, other], [1.0, 1.0], [tok, other_tok], PROMPTS)
    with pytest.raises(ValueError, match="Got 2 experts but 1 tokenizers"):
        mixture_generate([model, other], [1.0, 1.0], [tok], PROMPTS)
    # experts that do share the vocabulary decode as with one tokenizer
    ref = mixture_generate([model, second], [1.0, 2.0], tok, PROMPTS, max_new_tokens=4)
    same = [tok, load_tokenizer(tiny_lm)]
    assert mixture_generate([model, second], [1.0, 2.0], same, PROMPTS, max_new_tokens=4) == ref


def test_verbose_shows_a_progress_bar_over_the_batches(experts, capsys):
    (model, *_), tok = experts
    enc = encode_sft(tok, PROMPTS, ANSWERS)
    for share_prompts in (True, False):
        token_predictions(model, tok, enc, batch_size=1, share_prompts=share_prompts, verbose=1)
        assert re.search(r"token predictions: .*\| 0/3 ", capsys.readouterr().err)
        choice_nll(model, tok, PROMPTS, CHOICES, batch_size=2, share_prompts=share_prompts,
                   verbose=1)
        n_batches = 2 if share_prompts else 4  # 3 questions, or their 7 options
        assert re.search(rf"choice NLL: .*\| 0/{n_batches} ", capsys.readouterr().err)
    mixture_generate([model], [1.0], tok, PROMPTS, max_new_tokens=2, batch_size=2, verbose=1)
    assert re.search(r"generating: .*\| 0/2 ", capsys.readouterr().err)
    token_predictions(model, tok, enc)
    choice_nll(model, tok, PROMPTS, CHOICES)
    mixture_generate([model], [1.0], tok, PROMPTS, max_new_tokens=2)
    assert "it/s" not in capsys.readouterr().err
