import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from skw2s.core.mixture import (
    COMBINE_METHODS,
    check_combine,
    confidence_step_weights,
    greedy_tokens,
    mix_log_probs,
    mix_token_log_probs,
    normalize_alphas,
    sample_tokens,
    staged_mixtures,
)

SETTINGS = settings(max_examples=100, deadline=None)


@st.composite
def logits_and_alphas(draw):
    T = draw(st.integers(1, 4))
    shape = (T, draw(st.integers(1, 3)), draw(st.integers(2, 6)))
    logits = draw(hnp.arrays(np.float32, shape, elements=st.floats(-30, 30, width=32)))
    alphas = draw(hnp.arrays(np.float64, T, elements=st.floats(0.01, 10.0)))
    return torch.from_numpy(logits), alphas


@SETTINGS
@given(logits_and_alphas(), st.sampled_from(["prob", "logit"]))
def test_output_is_a_distribution(data, combine):
    logits, alphas = data
    out = mix_log_probs(logits, alphas, combine=combine)
    assert out.shape == logits.shape[1:] and out.dtype == torch.float32
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(out.shape[:-1]))


@SETTINGS
@given(logits_and_alphas(), st.floats(0.01, 100.0), st.sampled_from(["prob", "logit"]))
def test_alpha_scale_invariance(data, c, combine):
    logits, alphas = data
    torch.testing.assert_close(
        mix_log_probs(logits, alphas * c, combine=combine),
        mix_log_probs(logits, alphas, combine=combine),
    )


@SETTINGS
@given(logits_and_alphas(), st.sampled_from(["prob", "logit"]))
def test_one_expert_is_its_log_softmax(data, combine):
    logits, _ = data
    out = mix_log_probs(logits[:1], [0.7], combine=combine)
    torch.testing.assert_close(out, torch.log_softmax(logits[0], -1))


@SETTINGS
@given(logits_and_alphas())
def test_equal_alphas_give_the_mean_distribution(data):
    logits, alphas = data
    out = mix_log_probs(logits.double(), np.ones(len(alphas)))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.exp(), torch.softmax(logits.double(), -1).mean(0))


def test_half_input_is_upcast_and_bad_input_raises():
    logits = torch.randn(2, 3, 5).half()
    assert mix_log_probs(logits, [1.0, 2.0]).dtype == torch.float32
    with pytest.raises(ValueError, match="combine"):
        mix_log_probs(logits, [1.0, 2.0], combine="mean")
    with pytest.raises(ValueError):
        mix_log_probs(logits, [1.0, 2.0, 3.0])
    for bad in ([1.0, 0.0], [1.0, -1.0], [1.0, float("nan")], [1.0, float("inf")], []):
        with pytest.raises(ValueError):
            normalize_alphas(bad)
    torch.testing.assert_close(
        normalize_alphas(torch.tensor([1.0, 3.0])), torch.tensor([0.25, 0.75], dtype=torch.float64)
    )


# -- the one check of ``combine`` --------------------------------------------------------------
def test_check_combine_accepts_every_method_and_names_a_bad_one():
    assert COMBINE_METHODS == ("prob", "logit", "confidence")
    for combine in COMBINE_METHODS:
        assert check_combine(combine) == combine
    for bad in ("mean", "Prob", "", None, 1, ("prob",)):
        with pytest.raises(ValueError, match=r'combine must be "prob", "logit" or "confidence", '
                           r"got " + re.escape(repr(bad))):
            check_combine(bad)


def test_every_mixture_function_checks_combine():
    logits = torch.randn(2, 3, 5)
    for call in (
        lambda: mix_log_probs(logits, [1.0, 2.0], combine="mean"),
        lambda: staged_mixtures(logits, [1.0, 2.0], combine="mean"),
        lambda: greedy_tokens(logits, torch.tensor([0.5, 0.5]), combine="mean"),
        lambda: sample_tokens(logits, [1.0, 2.0], combine="mean"),
    ):
        with pytest.raises(ValueError, match="combine must be"):
            call()


def test_confidence_mixture_weights_each_step_by_the_experts_own_confidence():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6, dtype=torch.float64) * 2  # (T, positions, V)
    alphas = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    probs = torch.softmax(logits, -1)
    raw = alphas[:, None] * probs.max(-1).values  # (T, positions)
    w = raw / raw.sum(0)
    got = confidence_step_weights(torch.log(probs), (alphas / alphas.sum())[:, None, None])
    torch.testing.assert_close(got[..., 0], w)
    torch.testing.assert_close(got.sum(0), torch.ones(4, 1, dtype=torch.float64))
    expected = torch.log((w[..., None] * probs).sum(0))
    torch.testing.assert_close(mix_log_probs(logits, alphas, "confidence"), expected)
    # one expert: its own distribution, whatever its weight
    torch.testing.assert_close(mix_log_probs(logits[:1], [3.0], "confidence"),
                               torch.log_softmax(logits[0], -1))
    # equally confident experts: the plain probability mixture
    flat = torch.stack([logits[0], logits[0].flip(-1)])
    torch.testing.assert_close(mix_log_probs(flat, [1.0, 3.0], "confidence"),
                               mix_log_probs(flat, [1.0, 3.0], "prob"))


# -- the mixture at one token ------------------------------------------------------------------
@SETTINGS
@given(logits_and_alphas())
def test_token_mixture_is_the_full_mixture_at_that_token(data):
    logits, alphas = data
    logits = logits.double()
    log_probs = torch.log_softmax(logits, -1)
    full = mix_log_probs(logits, alphas)
    # at every token y: log sum_t a_t p_t(y), from the experts' log p_t(y) alone
    per_token = mix_token_log_probs(log_probs, alphas)
    assert per_token.dtype == torch.float64 and per_token.shape == full.shape
    torch.testing.assert_close(per_token, full, rtol=1e-12, atol=1e-12)
    # so its probabilities over all tokens sum to 1
    torch.testing.assert_close(per_token.exp().sum(-1), torch.ones(full.shape[:-1],
                                                                   dtype=torch.float64))


def test_token_mixture_checks_its_input():
    with pytest.raises(ValueError, match=r"log_probs must have shape \(T, ...\) with T = 2"):
        mix_token_log_probs(torch.zeros(3, 4), [1.0, 2.0])
    with pytest.raises(ValueError, match="alphas must be finite and > 0"):
        mix_token_log_probs(torch.zeros(2, 4), [1.0, 0.0])


# -- staged mixtures ---------------------------------------------------------------------------
@SETTINGS
@given(logits_and_alphas(), st.sampled_from(["prob", "logit"]))
def test_staged_mixtures_are_distributions_and_the_last_is_the_plain_mixture(data, combine):
    logits, alphas = data
    stages = staged_mixtures(logits, alphas, combine=combine)
    assert len(stages) == len(alphas)
    for s, out in enumerate(stages, start=1):
        assert out.shape == logits.shape[1:]
        torch.testing.assert_close(out.exp().sum(-1), torch.ones(out.shape[:-1]))
        # stage s is the mixture of the first s experts, weights renormalised: the same call
        assert torch.equal(out, mix_log_probs(logits[:s], alphas[:s], combine=combine))
    assert torch.equal(stages[-1], mix_log_probs(logits, alphas, combine=combine))
    torch.testing.assert_close(stages[0], torch.log_softmax(logits[0], -1))


@SETTINGS
@given(logits_and_alphas(), st.data())
def test_staged_token_mixtures_match_the_staged_full_mixtures(data, draw):
    logits, alphas = data
    logits = logits.double()
    T, n, V = logits.shape
    target = torch.tensor(draw.draw(st.lists(st.integers(0, V - 1), min_size=n, max_size=n)))
    gold = torch.log_softmax(logits, -1).gather(-1, target.expand(T, n)[..., None])[..., 0]
    stages = staged_mixtures(gold, alphas, token=True)
    full = staged_mixtures(logits, alphas)
    assert len(stages) == T
    for got, ref in zip(stages, full):
        torch.testing.assert_close(got, ref.gather(-1, target[:, None])[:, 0],
                                   rtol=1e-12, atol=1e-12)
    assert torch.equal(stages[-1], mix_token_log_probs(gold, alphas))


def test_staged_mixtures_take_chosen_stages_and_check_them():
    logits = torch.randn(3, 2, 5)
    alphas = np.array([1.0, 2.0, 3.0])
    chosen = staged_mixtures(logits, alphas, stages=[3])
    assert len(chosen) == 1 and torch.equal(chosen[0], mix_log_probs(logits, alphas))
    for bad in ([0], [4], [True], [1.5]):
        with pytest.raises(ValueError, match=r"Every stage must be an int in \[1, 3\]"):
            staged_mixtures(logits, alphas, stages=bad)
    with pytest.raises(ValueError, match='supports combine="prob" only'):
        staged_mixtures(logits[..., 0], alphas, combine="logit", token=True)


# -- the next token ----------------------------------------------------------------------------
@SETTINGS
@given(logits_and_alphas(), st.sampled_from(["prob", "logit"]))
def test_greedy_token_is_the_mixtures_most_likely_token(data, combine):
    logits, alphas = data
    weights = normalize_alphas(alphas).to(torch.float32)
    token = greedy_tokens(logits, weights, combine)
    assert token.shape == logits.shape[1:-1] and token.dtype == torch.int64
    logp = mix_log_probs(logits.double(), alphas, combine=combine)
    chosen = logp.gather(-1, token[..., None])[..., 0]
    # the argmax up to float32 rounding of near-ties
    assert torch.all(chosen >= logp.max(-1).values - 1e-5)
    # one expert: its own argmax, whatever its weight
    assert torch.equal(greedy_tokens(logits[:1], torch.ones(1), combine), logits[0].argmax(-1))


def test_sampled_tokens_follow_the_mixture():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 4) * 2
    alphas = [0.5, 2.0, 1.0]
    for combine in COMBINE_METHODS:
        for temperature in (1.0, 0.5):
            n = 20000
            draws = sample_tokens(logits.expand(3, n, 4), alphas, combine,
                                  temperature=temperature,
                                  generator=torch.Generator().manual_seed(1))
            assert draws.shape == (n,) and draws.dtype == torch.int64
            freq = torch.bincount(draws, minlength=4).double() / n
            expected = torch.softmax(mix_log_probs(logits, alphas, combine)[0].double()
                                     / temperature, -1)
            torch.testing.assert_close(freq, expected, rtol=0, atol=0.015)
    # the generator alone decides the draw
    first, second = (
        sample_tokens(logits.expand(3, 50, 4), alphas, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    )
    assert torch.equal(first, second)
