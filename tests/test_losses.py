"""skw2s.hf.losses against direct numpy computations, their properties, and their input errors."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from skw2s.hf import losses as L
from skw2s.hf.losses import LOSSES, Loss, get_loss
from skw2s.hf.losses._classifier import _binary_harden

SETTINGS = settings(max_examples=60, deadline=None)
TOL = dict(rel=1e-9, abs=1e-9)  # float64 torch against float64 numpy
# Logits and binary soft labels on coarse grids: equal probabilities stay exactly equal and
# distinct ones far apart in both computations, so a threshold cannot fall between them.
GRID = st.integers(-16, 16).map(lambda v: v / 4)
STEP = {"logconf", "entropy", "choice_logconf"}


# ---------------------------------------------------------------------------------------------
# numpy references


def np_log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = np.max(np.where(np.isneginf(z), -np.inf, z), axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def np_ce(z, t):
    lp = np_log_softmax(z)
    with np.errstate(invalid="ignore"):
        return -np.where(t > 0, t * lp, 0.0).sum(axis=1)


def np_onehot(y, k):
    out = np.zeros((len(y), k))
    out[np.arange(len(y)), y] = 1.0
    return out


def np_wmean(per, w):
    w = np.ones(len(per)) if w is None else np.asarray(w, dtype=np.float64)
    return float((w * per).sum() / w.sum())


def np_ramp(step_frac, warmup_frac):
    return 1.0 if warmup_frac == 0 else min(1.0, step_frac / warmup_frac)


def ref_logconf(z, t, w, step_frac, aux_coef=0.5, warmup_frac=0.1):
    p = np.exp(np_log_softmax(z))
    rows = np.ones(len(z), bool) if w is None else np.asarray(w) > 0
    prior = t[rows, 1].mean()
    threshold = np.quantile(p[rows, 0], prior)  # linear interpolation, as torch.quantile
    hard = np.stack([p[:, 0] >= threshold, p[:, 0] < threshold], axis=1).astype(float)
    c = aux_coef * np_ramp(step_frac, warmup_frac)
    return np_wmean(np_ce(z, (1 - c) * t + c * hard), w)


def ref_product(z, t, w, alpha=1.0, beta=1.0):
    p = np.exp(np_log_softmax(z))
    target = p**beta * t**alpha
    target = target / target.sum(axis=1, keepdims=True)
    return np_wmean(np_ce(z, target), w), target


def ref_kl(z, t, w):
    lp = np_log_softmax(z)
    per = [sum(t[i, k] * (np.log(t[i, k]) - lp[i, k]) for k in range(z.shape[1]) if t[i, k] > 0)
           for i in range(len(z))]
    return np_wmean(np.array(per), w)


def ref_window(z, t, w, radius):
    p = np.exp(np_log_softmax(z))
    ce = np_ce(z, t)
    per = np.array([ce[i] if p[i].max() < 0.5 + radius else 0.0 for i in range(len(z))])
    return np_wmean(per, w)


def ref_entropy(z, t, w, step_frac, aux_coef=0.5, warmup_frac=0.1):
    lp = np_log_softmax(z)
    h = -(np.exp(lp) * lp).sum(axis=1)
    c = aux_coef * np_ramp(step_frac, warmup_frac)
    return np_wmean((1 - c) * np_ce(z, t) + c * h, w)


def ref_choice_logconf(ll, t, w, step_frac, aux_coef=0.5, warmup_frac=0.1):
    hard = np_onehot(np.argmax(np_log_softmax(ll), axis=1), ll.shape[1])  # first max on ties
    c = aux_coef * np_ramp(step_frac, warmup_frac)
    return np_wmean(np_ce(ll, (1 - c) * t + c * hard), w)


# ---------------------------------------------------------------------------------------------
# strategies


@st.composite
def problems(draw, k=None, soft=None, weighted=None, n_max=10):
    """(logits (n, K) float64, labels (hard int64 or soft float64), weights or None)."""
    n = draw(st.integers(1, n_max))
    k = k or draw(st.integers(2, 4))
    z = np.array(draw(st.lists(GRID, min_size=n * k, max_size=n * k))).reshape(n, k)
    soft = draw(st.booleans()) if soft is None else soft
    if soft and k == 2:
        p1 = np.array(draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))) / 8
        y = np.stack([1 - p1, p1], axis=1)
    elif soft:
        counts = np.array(draw(st.lists(st.integers(0, 4), min_size=n * k, max_size=n * k)))
        counts = counts.reshape(n, k).astype(float)
        counts[counts.sum(axis=1) == 0, 0] = 1.0
        y = counts / counts.sum(axis=1, keepdims=True)
    else:
        y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    weighted = draw(st.booleans()) if weighted is None else weighted
    w = None
    if weighted:
        w = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=float)
        assume(w.sum() > 0)
    return z, y, w


def targets(y, k):
    return np_onehot(y, k) if y.ndim == 1 else y


def call(name, z, y, w=None, **kw):
    """The registered loss on float64 tensors, as a float."""
    if name in STEP:
        kw.setdefault("step_frac", 0.5)
    out = LOSSES[name](torch.as_tensor(z), torch.as_tensor(y), sample_weight=w, **kw)
    return float(out)


def labels_for(name, y, k):
    """Soft labels for the soft-only losses, else ``y`` as drawn."""
    return targets(y, k) if LOSSES[name].needs_soft_labels else y


def applicable(name, k):
    return not (name in ("logconf", "window") and k != 2)


# ---------------------------------------------------------------------------------------------
# module and registry


def test_import_skw2s_does_not_import_the_losses():
    code = ("import sys, skw2s; "
            "sys.exit('skw2s.hf.losses' in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_names_and_metadata():
    assert set(LOSSES) == {"xent", "logconf", "product", "kl", "window", "entropy",
                           "choice_xent", "choice_logconf"}
    assert {n for n, l in LOSSES.items() if l.needs_step_frac} == STEP
    assert {n for n, l in LOSSES.items() if l.needs_soft_labels} == {"product"}
    assert not any(l.needs_hard_labels for l in LOSSES.values())
    assert all(l.accepts_soft_labels for l in LOSSES.values())
    assert {n for n, l in LOSSES.items() if l.applies_to == "choice"} == {
        "choice_xent", "choice_logconf"}
    assert all(LOSSES[n].name == n for n in LOSSES)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_metadata_matches_behaviour(name):
    z = torch.tensor([[1.0, -0.5], [0.2, 0.3], [-1.0, 2.0]])
    hard, soft = torch.tensor([0, 1, 1]), torch.tensor([[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]])
    loss = LOSSES[name]
    kw = {"step_frac": 0.3} if loss.needs_step_frac else {}
    assert torch.isfinite(loss(z, soft, **kw))
    if loss.accepts_hard_labels:
        assert torch.isfinite(loss(z, hard, **kw))
    else:
        with pytest.raises(ValueError, match="needs soft labels"):
            loss(z, hard, **kw)
    if loss.needs_step_frac:
        with pytest.raises(ValueError, match="step_frac"):
            loss(z, soft)
    else:
        assert torch.isfinite(loss(z, soft))


def test_get_loss_binds_params_and_pickles():
    z, y = torch.tensor([[1.0, -0.5], [0.2, 0.3]]), torch.tensor([[0.7, 0.3], [0.4, 0.6]])
    loss = get_loss("logconf", aux_coef=0.9)
    assert repr(loss) == "Loss('logconf', aux_coef=0.9)"
    assert get_loss("xent") is LOSSES["xent"]
    assert loss.with_params(warmup_frac=0.0).params == {"aux_coef": 0.9, "warmup_frac": 0.0}
    torch.testing.assert_close(loss(z, y, step_frac=0.05),
                               L.logconf(z, y, step_frac=0.05, aux_coef=0.9))
    assert not torch.allclose(loss(z, y, step_frac=1.0), LOSSES["logconf"](z, y, step_frac=1.0))
    again = pickle.loads(pickle.dumps(get_loss("window", radius=0.2)))
    assert again.params == {"radius": 0.2}
    torch.testing.assert_close(again(z, y), L.window(z, y, radius=0.2))


def test_a_custom_loss_gets_the_label_check():
    def hard_only(logits, labels, *, sample_weight=None, step_frac=None, reduction="mean"):
        return torch.nn.functional.cross_entropy(logits, labels)

    loss = Loss("hard_xent", hard_only, accepts_soft_labels=False)
    assert loss.needs_hard_labels and loss.param_names() == []
    z = torch.tensor([[1.0, -0.5], [0.2, 0.3]])
    torch.testing.assert_close(loss(z, torch.tensor([0, 1])), L.xent(z, torch.tensor([0, 1])))
    with pytest.raises(ValueError, match=r"'hard_xent' loss needs hard labels.*shape \(2, 2\)"):
        loss(z, torch.tensor([[0.7, 0.3], [0.4, 0.6]]))
    with pytest.raises(ValueError, match="'hard_xent' loss needs hard labels"):
        L.check_labels(loss, np.array([[0.7, 0.3]]))
    assert L.check_labels("xent", [0, 1]) == "hard"


# ---------------------------------------------------------------------------------------------
# each loss against numpy


@SETTINGS
@given(problems())
def test_xent_matches_numpy(data):
    z, y, w = data
    expected = np_wmean(np_ce(z, targets(y, z.shape[1])), w)
    assert call("xent", z, y, w) == pytest.approx(expected, **TOL)


@SETTINGS
@given(problems(soft=False))
def test_xent_on_one_hot_soft_labels_equals_hard_labels(data):
    z, y, w = data
    hard = L.xent(torch.tensor(z, dtype=torch.float32), torch.tensor(y), sample_weight=w)
    one_hot = torch.nn.functional.one_hot(torch.tensor(y), z.shape[1]).float()
    soft = L.xent(torch.tensor(z, dtype=torch.float32), one_hot, sample_weight=w)
    torch.testing.assert_close(soft, hard, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(problems(k=2), st.integers(0, 20).map(lambda v: v / 20),
       st.sampled_from([0.0, 0.1, 0.3]), st.sampled_from([0.0, 0.5, 1.0]))
def test_logconf_matches_numpy(data, step_frac, warmup_frac, aux_coef):
    z, y, w = data
    expected = ref_logconf(z, targets(y, 2), w, step_frac, aux_coef, warmup_frac)
    got = L.logconf(torch.tensor(z), torch.tensor(y), sample_weight=w, step_frac=step_frac,
                    aux_coef=aux_coef, warmup_frac=warmup_frac)
    assert float(got) == pytest.approx(expected, **TOL)
    if (aux_coef, warmup_frac) == (0.5, 0.1):  # the defaults
        assert call("logconf", z, y, w, step_frac=step_frac) == pytest.approx(expected, **TOL)


@SETTINGS
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=30, unique=True),
       st.floats(0.0, 1.0))
def test_logconf_threshold_is_the_mean_weak_label_quantile(p0, prior):
    p0 = np.array(p0) / 1000
    threshold, hard = _binary_harden(torch.tensor(p0), torch.tensor(prior, dtype=torch.float64))
    assert float(threshold) == pytest.approx(np.quantile(p0, prior), rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(hard.numpy()[:, 1], (p0 < float(threshold)).astype(float))
    assert np.all(hard.numpy().sum(axis=1) == 1)
    # distinct probabilities: the fraction hardened to class 1 is the prior within 1/n
    assert abs(hard.numpy()[:, 1].mean() - prior) <= 1 / len(p0) + 1e-12


def test_logconf_threshold_uses_only_positive_weight_rows():
    p0 = torch.tensor([0.1, 0.2, 0.3, 0.9, 0.95])
    active = torch.tensor([True, True, True, False, False])
    threshold, _ = _binary_harden(p0, torch.tensor(0.5), active)
    assert float(threshold) == pytest.approx(0.2)
    # the weak labels' mean too: the weighted rows all say class 0, the zero-weight ones class 1
    z = torch.tensor([[0.0, 1.0], [0.0, 0.5], [0.0, -0.5], [0.0, -1.0], [0.0, 2.0], [0.0, 3.0]],
                     dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 0, 1, 1])
    w = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    kw = dict(step_frac=1.0, aux_coef=1.0, reduction="none")
    per = L.logconf(z, y, sample_weight=w, **kw)
    np.testing.assert_allclose(per[:4].numpy(), -np_log_softmax(z[:4].numpy())[:, 0], rtol=1e-12)
    torch.testing.assert_close(per[:4], L.logconf(z[:4], y[:4], **kw))


def test_warmup_is_a_linear_ramp_not_openais_jump():
    openai = lambda s, w: 1.0 if s > w else s  # weak_to_strong/loss.py logconf_loss_fn
    assert L.logconf_warmup(0.0) == 0.0
    for s in np.linspace(0, 0.1, 11):
        assert L.logconf_warmup(s, 0.1) == pytest.approx(s / 0.1)
    assert L.logconf_warmup(0.1, 0.1) == 1.0
    assert all(L.logconf_warmup(s, 0.1) == 1.0 for s in (0.1000001, 0.5, 1.0))
    assert L.logconf_warmup(0.05, 0.1) == pytest.approx(0.5)
    assert openai(0.05, 0.1) == pytest.approx(0.05)  # openai is 10x smaller mid-warmup
    assert openai(0.1, 0.1) == pytest.approx(0.1) and openai(0.1001, 0.1) == 1.0  # then jumps
    assert L.logconf_warmup(0.0, 0.0) == 1.0 and L.logconf_warmup(0.3, 0.0) == 1.0


@SETTINGS
@given(problems(k=2))
def test_logconf_and_entropy_are_xent_at_step_zero_or_without_aux(data):
    z, y, w = data
    plain = call("xent", z, y, w)
    for name in ("logconf", "entropy"):
        assert call(name, z, y, w, step_frac=0.0) == pytest.approx(plain, **TOL)
        got = float(LOSSES[name].with_params(aux_coef=0.0)(
            torch.tensor(z), torch.tensor(y), sample_weight=w, step_frac=1.0))
        assert got == pytest.approx(plain, **TOL)


@SETTINGS
@given(problems(soft=True), st.sampled_from([0.0, 0.5, 1.0, 2.0]),
       st.sampled_from([0.0, 1.0, 3.0]))
def test_product_matches_numpy(data, alpha, beta):
    z, y, w = data
    expected, _ = ref_product(z, y, w, alpha, beta)
    got = L.product(torch.tensor(z), torch.tensor(y), sample_weight=w, alpha=alpha, beta=beta)
    assert float(got) == pytest.approx(expected, **TOL)


def test_product_gradient_treats_the_target_as_constant():
    z = np.array([[1.0, -0.5, 0.25], [0.0, 2.0, -1.0]])
    y = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    _, target = ref_product(z, y, None)
    logits = torch.tensor(z, requires_grad=True)
    L.product(logits, torch.tensor(y)).backward()
    expected = (np.exp(np_log_softmax(z)) - target) / len(z)
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-10, atol=1e-12)
    # uniform weak labels: the target is the student's own prediction, the loss its entropy
    p = np.exp(np_log_softmax(z))
    uniform = torch.full((2, 3), 1 / 3, dtype=torch.float64)
    assert float(L.product(torch.tensor(z), uniform)) == pytest.approx(
        -(p * np.log(p)).sum(axis=1).mean(), **TOL)


def test_product_stays_finite_where_openais_underflows():
    logits, labels = torch.tensor([[200.0, -200.0]]), torch.tensor([[1.0, 0.0]]).flip(1)
    preds = torch.softmax(logits, -1)  # [1, 0]: the product with labels [0, 1] is all zeros
    openai = preds * labels / (preds * labels).sum(-1, keepdim=True)
    assert torch.isnan(openai).all()
    assert float(L.product(logits, labels)) == pytest.approx(400.0, rel=1e-6)


@SETTINGS
@given(problems())
def test_kl_matches_numpy_and_is_xent_minus_label_entropy(data):
    z, y, w = data
    t = targets(y, z.shape[1])
    assert call("kl", z, y, w) == pytest.approx(ref_kl(z, t, w), **TOL)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(t > 0, t * np.log(t), 0.0).sum(axis=1)
    assert call("kl", z, y, w) == pytest.approx(call("xent", z, y, w) - np_wmean(h, w), **TOL)


def test_kl_is_zero_when_the_student_matches():
    z = torch.tensor([[1.0, -0.5, 0.2], [0.0, 3.0, -2.0]], dtype=torch.float64)
    assert float(L.kl(z, torch.softmax(z, -1))) == pytest.approx(0.0, abs=1e-12)


@SETTINGS
@given(problems(k=2), st.sampled_from([0.0, 0.1, 0.15, 0.3, 0.49]))
def test_window_matches_numpy(data, radius):
    z, y, w = data
    got = float(L.window(torch.tensor(z), torch.tensor(y), sample_weight=w, radius=radius))
    assert got == pytest.approx(ref_window(z, targets(y, 2), w, radius), **TOL)


def test_window_drops_confident_rows_but_keeps_them_in_the_denominator():
    z = torch.tensor([[3.0, -3.0], [0.1, 0.0], [-0.2, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    ce = np_ce(z.numpy(), np_onehot(y.numpy(), 2))
    assert float(L.window(z, y, radius=0.15)) == pytest.approx((ce[1] + ce[2]) / 3, **TOL)
    # EleutherAI trains weak models with radius 0.51: every row counts, i.e. plain xent
    assert float(L.window(z, y, radius=0.51)) == pytest.approx(ce.mean(), **TOL)


@SETTINGS
@given(st.lists(st.integers(0, 16), min_size=1, max_size=25))
def test_midweak_radius_is_the_lower_median_distance_from_one_half(p1):
    p1 = np.array(p1) / 16
    conf = np.sort(np.abs(p1 - 0.5))
    expected = conf[(len(conf) - 1) // 2]  # torch.median: the lower middle value
    assert L.midweak_radius(np.stack([1 - p1, p1], axis=1)) == pytest.approx(expected)


def test_midweak_radius_skips_zero_weight_rows():
    labels = np.array([[0.5, 0.5], [0.1, 0.9], [0.0, 1.0]])
    assert L.midweak_radius(labels) == pytest.approx(0.4)
    assert L.midweak_radius(labels, sample_weight=[1, 0, 0]) == pytest.approx(0.0)


@SETTINGS
@given(problems(), st.integers(0, 10).map(lambda v: v / 10))
def test_entropy_matches_numpy(data, step_frac):
    z, y, w = data
    expected = ref_entropy(z, targets(y, z.shape[1]), w, step_frac)
    assert call("entropy", z, y, w, step_frac=step_frac) == pytest.approx(expected, **TOL)
    detached = L.entropy(torch.tensor(z), torch.tensor(y), sample_weight=w, step_frac=step_frac,
                         detach=True)
    assert float(detached) == pytest.approx(expected, **TOL)


def test_entropy_gradient_flows_unless_detached_as_eleutherai():
    z = np.array([[1.0, -0.5, 0.25], [0.0, 2.0, -1.0], [0.3, 0.3, 0.1]])
    y = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [0.0, 1.0, 0.0]])
    p = np.exp(np_log_softmax(z))
    h = -(p * np.log(p)).sum(axis=1, keepdims=True)
    a = 0.5  # after warmup
    ce_grad = (p - y) / len(z)
    entropy_grad = -p * (np.log(p) + h) / len(z)  # d H(softmax z) / dz
    for detach, expected in ((False, (1 - a) * ce_grad + a * entropy_grad),
                             (True, (1 - a) * ce_grad)):
        logits = torch.tensor(z, requires_grad=True)
        L.entropy(logits, torch.tensor(y), step_frac=1.0, detach=detach).backward()
        np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# multiple choice


def test_choice_log_proba_matches_numpy_with_absent_choices_and_lengths():
    ll = np.array([[-3.0, -1.0, -2.5, -np.inf], [-0.5, -4.0, -np.inf, -np.inf]])
    lengths = np.array([[3, 1, 5, 1], [1, 2, 1, 1]])
    out = L.choice_log_proba(torch.tensor(ll))
    np.testing.assert_allclose(out.numpy(), np_log_softmax(ll), rtol=1e-12)
    np.testing.assert_allclose(out.exp().sum(-1).numpy(), 1.0, rtol=1e-12)
    assert out.exp()[0, 3] == 0 and out.exp()[1, 2:].eq(0).all()
    normed = L.choice_log_proba(torch.tensor(ll), lengths=lengths)
    np.testing.assert_allclose(normed.numpy(), np_log_softmax(ll / lengths), rtol=1e-12)


@SETTINGS
@given(problems(weighted=None, k=None), st.data())
def test_choice_xent_matches_numpy_and_xent(data, draw):
    ll, y, w = data
    n, c = ll.shape
    assert call("choice_xent", ll, y, w) == pytest.approx(call("xent", ll, y, w), **TOL)
    # absent choices: -inf entries the labels avoid
    t = targets(y, c)
    absent = np.array(draw.draw(st.lists(st.booleans(), min_size=n * c, max_size=n * c)))
    absent = absent.reshape(n, c) & (t == 0)
    absent[np.arange(n), np.argmax(t, axis=1)] = False
    ll = np.where(absent, -np.inf, ll)
    expected = np_wmean(np_ce(ll, t), w)
    assert call("choice_xent", ll, y, w) == pytest.approx(expected, **TOL)
    logits = torch.tensor(ll, requires_grad=True)
    L.choice_xent(logits, torch.tensor(y), sample_weight=w).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[torch.tensor(absent)].eq(0).all()


@SETTINGS
@given(problems(), st.integers(0, 10).map(lambda v: v / 10))
def test_choice_logconf_matches_numpy(data, step_frac):
    ll, y, w = data
    expected = ref_choice_logconf(ll, targets(y, ll.shape[1]), w, step_frac)
    assert call("choice_logconf", ll, y, w, step_frac=step_frac) == pytest.approx(expected, **TOL)


def test_choice_logconf_hardens_by_argmax_with_ties_to_the_first():
    ll = torch.tensor([[-1.0, -1.0, -3.0], [-2.0, -0.5, -np.inf]], dtype=torch.float64)
    y = torch.tensor([2, 0])
    got = L.choice_logconf(ll, y, step_frac=1.0, aux_coef=1.0, reduction="none")
    expected = -np_log_softmax(ll.numpy())[[0, 1], [0, 1]]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# properties of every loss


@SETTINGS
@given(problems(), st.sampled_from(sorted(LOSSES)))
def test_losses_are_finite_and_non_negative(data, name):
    z, y, w = data
    assume(applicable(name, z.shape[1]))
    value = call(name, z, labels_for(name, y, z.shape[1]), w)
    assert np.isfinite(value) and value >= -1e-12


@SETTINGS
@given(problems(weighted=True), st.sampled_from(sorted(LOSSES)))
def test_zero_weights_remove_examples(data, name):
    z, y, w = data
    assume(applicable(name, z.shape[1]))
    y = labels_for(name, y, z.shape[1])
    keep = w > 0
    assert call(name, z, y, w) == pytest.approx(call(name, z[keep], y[keep], w[keep]), **TOL)
    per = LOSSES[name](torch.tensor(z), torch.tensor(y), sample_weight=w, reduction="none",
                       step_frac=0.5 if name in STEP else None)
    assert per.shape == (len(z),) and per[torch.tensor(~keep)].eq(0).all()


@SETTINGS
@given(problems(weighted=True), st.sampled_from(sorted(set(LOSSES) - {"logconf"})))
def test_integer_weights_equal_repeating_examples(data, name):
    z, y, w = data
    assume(applicable(name, z.shape[1]))
    y = labels_for(name, y, z.shape[1])
    reps = w.astype(int)
    assert call(name, z, y, w) == pytest.approx(
        call(name, np.repeat(z, reps, axis=0), np.repeat(y, reps, axis=0)), **TOL)


@SETTINGS
@given(problems(), st.sampled_from(sorted(LOSSES)))
def test_reductions_agree(data, name):
    z, y, w = data
    assume(applicable(name, z.shape[1]))
    y = torch.tensor(labels_for(name, y, z.shape[1]))
    kw = {"sample_weight": w, "step_frac": 0.4 if name in STEP else None}
    loss, z = LOSSES[name], torch.tensor(z)
    per, total = loss(z, y, reduction="none", **kw), loss(z, y, reduction="sum", **kw)
    torch.testing.assert_close(per.sum(), total)
    denominator = len(z) if w is None else w.sum()
    torch.testing.assert_close(loss(z, y, **kw), total / denominator)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_losses_are_differentiable_and_upcast_half(name, dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2, generator=g).to(dtype).requires_grad_(True)
    soft = torch.softmax(torch.randn(6, 2, generator=g), -1)
    value = LOSSES[name](logits, soft, step_frac=0.5 if name in STEP else None)
    assert value.dtype == torch.promote_types(dtype, torch.float32) and value.ndim == 0
    value.backward()
    assert logits.grad.shape == logits.shape and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_on_cuda_match_cpu_with_numpy_labels_and_weights(name):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 2, generator=g)
    soft = torch.softmax(torch.randn(8, 2, generator=g), -1).numpy()
    labels = soft if LOSSES[name].needs_soft_labels else soft.argmax(1)
    weights = np.arange(8, dtype=np.float64) % 3
    kw = {"sample_weight": weights, "step_frac": 0.5 if name in STEP else None}
    on_gpu = logits.cuda().requires_grad_(True)
    value = LOSSES[name](on_gpu, labels, **kw)
    assert value.device.type == "cuda"
    value.backward()
    assert on_gpu.grad.device.type == "cuda" and torch.isfinite(on_gpu.grad).all()
    torch.testing.assert_close(value.cpu(), LOSSES[name](logits, labels, **kw))


def test_a_full_batch_training_loop_moves_the_student_towards_the_labels():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    labels = torch.softmax(3 * x[:, :2], -1)
    for name in ("xent", "logconf", "product", "kl", "entropy"):
        head = torch.nn.Linear(5, 2)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        opt = torch.optim.SGD(head.parameters(), lr=0.5)
        loss, n_steps = LOSSES[name], 50
        for step in range(n_steps):
            opt.zero_grad()
            loss(head(x), labels, step_frac=step / n_steps).backward()
            opt.step()
        agree = (head(x).argmax(-1) == labels.argmax(-1)).float().mean()
        assert agree > 0.9, name


# ---------------------------------------------------------------------------------------------
# bad input


def test_unknown_loss_names_it_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown loss 'logconfidence'\. Known losses: "
                                         r"choice_logconf, choice_xent, entropy, kl, logconf"):
        get_loss("logconfidence")
    with pytest.raises(ValueError, match="Unknown loss None"):
        get_loss(None)
    with pytest.raises(ValueError, match="Unknown loss"):
        L.check_labels("nope", [0, 1])


@pytest.mark.parametrize("name, params, match", [
    ("kl", {"aux_coef": 0.5}, r"'aux_coef' is not a parameter of the 'kl' loss; it accepts none"),
    ("logconf", {"radius": 0.2}, r"accepts \['aux_coef', 'warmup_frac'\]"),
    ("logconf", {"aux_coef": 1.5}, r"'aux_coef' parameter of logconf must be a float in the "
                                   r"range \[0, 1\]\. Got 1.5"),
    ("entropy", {"warmup_frac": -0.1}, "'warmup_frac' parameter of entropy"),
    ("entropy", {"detach": "yes"}, "'detach' parameter of entropy must be a bool"),
    ("product", {"alpha": -1}, r"'alpha' parameter of product must be a float in the range "
                               r"\[0, inf\)"),
    ("window", {"radius": float("nan")}, "'radius' parameter of window"),
    ("window", {"radius": "midweak"}, r"midweak_radius\(soft_labels\)"),
])
def test_bad_params(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_loss(name, **params)


def test_bad_params_in_a_direct_call():
    z, y = torch.zeros(2, 2), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="'aux_coef' parameter of logconf"):
        L.logconf(z, y, step_frac=0.5, aux_coef=2)
    with pytest.raises(ValueError, match="midweak_radius"):
        L.window(z, y, radius="midweak")


def test_soft_only_loss_rejects_hard_labels():
    with pytest.raises(ValueError, match=r"'product' loss needs soft labels.*predict_proba.*"
                                         r"shape \(2,\).*exactly xent"):
        L.product(torch.zeros(2, 2), torch.tensor([0, 1]))


@pytest.mark.parametrize("logits, labels, match", [
    (torch.zeros(4, 2), torch.tensor([0, 1, 1]), r"xent: hard labels have shape \(3,\) but "
                                                 r"logits have shape \(4, 2\); expected \(4,\)"),
    (torch.zeros(4, 2), torch.full((4, 3), 1 / 3), r"soft labels have shape \(4, 3\) but logits "
                                                   r"have shape \(4, 2\)"),
    (torch.zeros(3, 2), torch.tensor([0, 2, 1]), r"labels\[1\] = 2 is not an index of the 2 "
                                                 r"classes"),
    (torch.zeros(3, 2), torch.tensor([0, -1, 1]), r"labels\[1\] = -1"),
    (torch.zeros(2, 2), torch.tensor([[0.6, 0.6], [0.5, 0.5]]), r"sum to 1 over the classes.*"
                                                               r"row 0 sums to 1.2"),
    (torch.zeros(2, 2), torch.tensor([[0.5, 0.5], [1.5, -0.5]]), "non-negative; row 1"),
    (torch.zeros(2, 2), torch.tensor([0.0, 1.0]), "must be integer class indices.*float32.*"
                                                  r"\(n, K\) probabilities"),
    (torch.zeros(2, 2), torch.tensor([[0, 1], [1, 0]]), "must be floating point probabilities"),
    (torch.zeros(2, 2), torch.tensor([True, False]), "dtype torch.bool"),
    (torch.zeros(2, 2), torch.zeros(2, 2, 1), r"shape \(n,\) \(hard\) or \(n, K\) \(soft\)"),
    (torch.zeros(2, dtype=torch.long).view(1, 2), torch.tensor([0]), "floating point"),
    (torch.zeros(3), torch.tensor([0, 1, 1]), r"shape \(n, K\) with n >= 1 and K >= 2"),
    (torch.zeros(3, 1), torch.tensor([0, 0, 0]), "K >= 2"),
    (torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), torch.tensor([0, 1]), "NaN or inf; see "
                                                                            "row 0"),
    (torch.tensor([[0.0, 0.0], [0.0, -float("inf")]]), torch.tensor([0, 0]), "row 1"),
])
def test_bad_logits_and_labels(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        L.xent(logits, labels)


def test_bad_sample_weight_step_frac_and_reduction():
    z, y = torch.zeros(3, 2), torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match=r"sample_weight has shape \(2,\); expected \(3,\)"):
        L.xent(z, y, sample_weight=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"non-negative; sample_weight\[2\] = -1.0"):
        L.xent(z, y, sample_weight=[1.0, 1.0, -1.0])
    with pytest.raises(ValueError, match="sample_weight sums to 0"):
        L.xent(z, y, sample_weight=[0.0, 0.0, 0.0])
    assert float(L.xent(z, y, sample_weight=[0.0, 0.0, 0.0], reduction="sum")) == 0.0
    with pytest.raises(ValueError, match="logconf: every sample_weight is 0"):
        L.logconf(z, y, sample_weight=[0.0, 0.0, 0.0], step_frac=0.5, reduction="sum")
    for name in STEP:
        with pytest.raises(ValueError, match=f"{name} needs the training progress: pass "
                                             "step_frac"):
            getattr(L, name)(z, y)
    for bad in (1.5, -0.1, float("nan"), True, "half"):
        with pytest.raises(ValueError, match="step_frac must be a float in \\[0, 1\\]"):
            L.logconf(z, y, step_frac=bad)
    with pytest.raises(ValueError, match="step_frac must be a float"):
        L.xent(z, y, step_frac=2.0)
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\); "
                                         r"got 'avg'"):
        L.kl(z, y, reduction="avg")


def test_binary_only_losses_reject_more_classes():
    z, y = torch.zeros(3, 3), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"logconf supports binary logits of shape \(n, 2\) "
                                         r"only.*got K = 3"):
        L.logconf(z, y, step_frac=0.5)
    with pytest.raises(ValueError, match="window supports binary logits.*got K = 3"):
        L.window(z, y)
    assert torch.isfinite(L.entropy(z, y, step_frac=0.5))  # entropy takes any K


def test_bad_choice_input():
    ll = torch.tensor([[-1.0, -2.0, -float("inf")], [-0.5, -0.1, -3.0]])
    with pytest.raises(ValueError, match=r"labels\[0\] = 2 is an absent choice"):
        L.choice_xent(ll, torch.tensor([2, 0]))
    with pytest.raises(ValueError, match="probability on an absent choice.*row 0"):
        L.choice_xent(ll, torch.tensor([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="labels\\[1\\] = 3 is not an index of the 3 choices"):
        L.choice_logconf(ll, torch.tensor([0, 3]), step_frac=0.5)
    with pytest.raises(ValueError, match="row 1 of loglik has no choice"):
        L.choice_xent(torch.tensor([[-1.0, -2.0], [-float("inf")] * 2]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="loglik contain NaN or inf .-inf marks an absent"):
        L.choice_log_proba(torch.tensor([[float("inf"), -2.0]]))
    with pytest.raises(ValueError, match=r"lengths have shape \(1, 3\); expected the shape of "
                                         r"loglik, \(2, 3\)"):
        L.choice_log_proba(ll, lengths=[[1, 1, 1]])
    with pytest.raises(ValueError, match="lengths must be positive token counts; see row 1"):
        L.choice_log_proba(ll, lengths=[[1, 1, 1], [1, 0, 1]])


def test_bad_midweak_input():
    with pytest.raises(ValueError, match="midweak_radius needs soft labels"):
        L.midweak_radius(np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"shape \(n, 2\) with n >= 1; got \(2, 3\)"):
        L.midweak_radius(np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="midweak_radius: soft labels must sum to 1"):
        L.midweak_radius(np.array([[0.5, 0.6]]))
    with pytest.raises(ValueError, match="every sample_weight is 0"):
        L.midweak_radius(np.array([[0.5, 0.5]]), sample_weight=[0.0])
