import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from skw2s._mixture import mix_log_probs, normalize_alphas

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
