"""The standard weak-to-strong methods beside EnsemW2S: uniform controls, learned mixture weights,
student losses in the estimators, confident-label filtering, AUROC and the paired statistics."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.base import clone

from skw2s import (
    LLMAdaBoostClassifier,
    LLMClassifier,
    LLMGenerator,
    TokenAdaBoostGenerator,
    UniformEnsembleClassifier,
    UniformEnsembleGenerator,
    WeakToStrongPipeline,
)
from skw2s.core.weights import fit_mixture_weights
from skw2s.core.stats import (
    mcnemar,
    paired_bootstrap,
    paired_comparison,
    seed_interval,
    seeds_for_half_width,
)

WORDS = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
TEXTS = [f"Q: {a} {b} A: {c}" for a in WORDS[:5] for b in WORDS[5:] for c in WORDS[:2]]
LABELS = np.array([t.endswith("oxygen") ^ (i % 4 == 0) for i, t in enumerate(TEXTS)]).astype(int)
MC = pd.DataFrame({
    "prompt": [f"Question: is {w} a gas?\nAnswer:" for w in WORDS[:8]],
    "choices": [["yes", "no"]] * 4 + [["yes", "no", "maybe"]] * 4,
})
MC_Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])

pytestmark = pytest.mark.usefixtures("fresh_feature_cache")


def _head(lm, **kw):
    return LLMClassifier(lm, mode="head", lr=0.05, n_epochs=100, device="cpu", **kw)


def _gen(lm, **kw):
    return LLMGenerator(lm, mode="lora", lr=5e-2, n_epochs=2, batch_size=4, lora_r=4,
                        device="cpu", max_length=48, **kw)


# -- uniform controls ---------------------------------------------------------------------------
def test_uniform_classifier_probabilities_are_the_mean_of_its_members(tiny_lm):
    uni = UniformEnsembleClassifier(_head(tiny_lm), n_estimators=3, bootstrap=True,
                                    random_state=0).fit(TEXTS, LABELS)
    members = np.stack([e.predict_proba(TEXTS) for e in uni.estimators_])
    np.testing.assert_allclose(uni.predict_proba(TEXTS), members.mean(0), rtol=1e-12)
    np.testing.assert_array_equal(uni.estimator_weights_, np.ones(3))
    assert uni.stop_reason_ is None and len(uni.history_) == 3
    votes = np.stack([e.predict(TEXTS) for e in uni.estimators_])
    majority = (votes.mean(0) > 0.5).astype(int)
    np.testing.assert_array_equal(uni.predict(TEXTS), majority)  # 3 members: no ties


def test_uniform_generator_probabilities_are_the_mixture_of_its_members(tiny_lm):
    uni = UniformEnsembleGenerator(_gen(tiny_lm), n_estimators=2, random_state=0).fit(MC, MC_Y)
    # the equal-weight mixture of eq. 1: each option's likelihood averaged over the members
    from skw2s.hf.decoding import choice_nll

    nll = [choice_nll(e.as_expert(), uni.tokenizer_, list(MC.prompt), list(MC.choices),
                      batch_size=4, max_length=48) for e in uni.estimators_]
    np.testing.assert_array_equal(uni.estimator_weights_, [1.0, 1.0])
    assert uni.predict(MC).shape == (8,)
    # token-level mixing: the mixture's option NLL lies between the members' for every option
    mixed = uni._choice_nll(__import__("skw2s.data.inputs").data.inputs.check_generation_input(MC))
    for i in range(len(MC)):
        lo = np.minimum(nll[0][i], nll[1][i]) - np.log(2) * 8
        hi = np.maximum(nll[0][i], nll[1][i]) + 1e-6
        assert np.all(mixed[i] <= hi) and np.all(mixed[i] >= lo)


@pytest.mark.parametrize("sampling, bootstrap", [("resample", True), ("reweight", False)])
def test_round_one_of_adaboost_is_member_one_of_the_uniform_control(tiny_lm, sampling, bootstrap,
                                                                     tmp_path):
    kw = dict(n_estimators=2, random_state=3, memory=tmp_path)
    boost = LLMAdaBoostClassifier(_head(tiny_lm), sampling=sampling, **kw).fit(TEXTS, LABELS)
    uni = UniformEnsembleClassifier(_head(tiny_lm), bootstrap=bootstrap, **kw).fit(TEXTS, LABELS)
    assert uni.history_[0]["cached"]  # the same stored round: trained once
    assert not uni.history_[1]["cached"]
    np.testing.assert_array_equal(uni.estimators_[0].predict_proba(TEXTS),
                                  boost.estimators_[0].predict_proba(TEXTS))
    # without the shared store, the same seed trains the same model
    fresh = UniformEnsembleClassifier(_head(tiny_lm), bootstrap=bootstrap, n_estimators=1,
                                      random_state=3).fit(TEXTS, LABELS)
    np.testing.assert_array_equal(fresh.estimators_[0].predict_proba(TEXTS),
                                  boost.estimators_[0].predict_proba(TEXTS))
    # another seed: another member 1
    other = clone(fresh).set_params(random_state=4).fit(TEXTS, LABELS)
    assert not np.array_equal(other.estimators_[0].predict_proba(TEXTS),
                              boost.estimators_[0].predict_proba(TEXTS)) or bootstrap is False


def test_round_one_of_token_boosting_is_member_one_of_the_bootstrap_control(tiny_lm):
    boost = TokenAdaBoostGenerator(_gen(tiny_lm), n_estimators=1, random_state=5).fit(MC, MC_Y)
    uni = UniformEnsembleGenerator(_gen(tiny_lm), n_estimators=1, bootstrap=True,
                                   random_state=5).fit(MC, MC_Y)
    np.testing.assert_array_equal(uni.predict_proba(MC), boost.estimators_[0].predict_proba(MC))
    assert uni.history_[0]["n_distinct_tokens"] == boost.history_[0]["n_distinct_tokens"]


# -- learned mixture weights ----------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.integers(2, 4), st.integers(0, 10_000))
def test_learned_weights_recover_a_known_mixture(n_experts, seed):
    rng = np.random.default_rng(seed)
    true = rng.dirichlet(np.ones(n_experts))
    # synthetic experts over 6 classes: items are drawn from the true mixture of them
    experts = rng.dirichlet(np.ones(6) * 0.3, size=(n_experts, 40))  # (T, contexts, classes)
    contexts = rng.integers(40, size=6000)
    mixture = np.einsum("t,tck->ck", true, experts)
    labels = np.array([rng.choice(6, p=mixture[c]) for c in contexts])
    L = experts[:, contexts, labels]
    w = fit_mixture_weights(L)
    assert w.shape == (n_experts,) and np.isclose(w.sum(), 1) and np.all(w >= 0)
    # maximum likelihood: at least as good as the truth on these draws, and close to it
    assert np.log(w @ L).sum() >= np.log(true @ L).sum() - 1e-6
    assert np.abs(w - true).max() < 0.12


def test_learned_weights_bad_input():
    with pytest.raises(ValueError, match="non-empty 2-D"):
        fit_mixture_weights(np.ones(3))
    with pytest.raises(ValueError, match="likelihood 0 under every expert"):
        fit_mixture_weights(np.array([[0.5, 0.0], [0.5, 0.0]]))


def test_combine_learned_fits_weights_on_held_out_rows(tiny_lm):
    boost = LLMAdaBoostClassifier(_head(tiny_lm), n_estimators=3, combine="learned",
                                  validation_fraction=0.2, random_state=0).fit(TEXTS, LABELS)
    w = boost.combination_weights_
    assert w.shape == (len(boost.estimators_),) and np.isclose(w.sum(), 1)
    members = np.stack([e.predict_proba(TEXTS) for e in boost.estimators_])
    expected = np.tensordot(w, members, 1) / w.sum()
    np.testing.assert_allclose(boost.predict_proba(TEXTS), expected, rtol=1e-10)
    np.testing.assert_array_equal(boost.predict(TEXTS),
                                  boost.classes_[boost.predict_proba(TEXTS).argmax(1)])
    with pytest.raises(ValueError, match="validation_fraction"):
        clone(boost).set_params(validation_fraction=0.001).fit(TEXTS[:20], LABELS[:20])


# -- student losses in the estimators -------------------------------------------------------------
def test_classifier_losses_train_and_differ(tiny_lm):
    xent = _head(tiny_lm, random_state=0).fit(TEXTS, LABELS)
    logconf = _head(tiny_lm, random_state=0, loss="logconf").fit(TEXTS, LABELS)
    assert not np.allclose(xent.predict_proba(TEXTS), logconf.predict_proba(TEXTS))
    soft = np.column_stack([1 - LABELS * 0.8 - 0.1, LABELS * 0.8 + 0.1])
    product = _head(tiny_lm, random_state=0, loss="product").fit(TEXTS, LABELS, y_proba=soft)
    assert product.score(TEXTS, LABELS) > 0.5
    lora = LLMClassifier(tiny_lm, mode="lora", lr=1e-2, n_epochs=1, device="cpu", random_state=0,
                         loss="logconf", batch_size=8).fit(TEXTS, LABELS, y_proba=soft)
    assert lora.predict_proba(TEXTS).shape == (len(TEXTS), 2)


def test_loss_bad_input(tiny_lm):
    with pytest.raises(ValueError, match="'loss' parameter of LLMClassifier must be a str among"):
        _head(tiny_lm, loss="hinge").fit(TEXTS, LABELS)
    with pytest.raises(ValueError, match="soft"):  # product needs soft labels
        _head(tiny_lm, loss="product").fit(TEXTS, LABELS)
    with pytest.raises(ValueError, match=r"y_proba must have shape \(50, 2\)"):
        _head(tiny_lm).fit(TEXTS, LABELS, y_proba=np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="is not a parameter of the 'logconf' loss"):
        _head(tiny_lm, loss="logconf", loss_params={"radius": 1}).fit(TEXTS, LABELS)
    with pytest.raises(ValueError, match="needs a choice loss"):  # SFT takes hard labels only
        _gen(tiny_lm).fit(MC, MC_Y, y_proba=np.full((8, 3), 1 / 3))
    with pytest.raises(ValueError, match="needs a 'choices' column"):
        _gen(tiny_lm, loss="choice_xent").fit(list(MC.prompt), [" yes"] * 8)


def test_generator_choice_losses_train(tiny_lm):
    hard = _gen(tiny_lm, loss="choice_xent", random_state=0).fit(MC, MC_Y)
    soft = np.zeros((8, 3))
    soft[np.arange(8), MC_Y] = 0.9
    soft[:4, 1 - MC_Y[:4]] = 0.1
    soft[4:, 2] = 0.1
    logconf = _gen(tiny_lm, loss="choice_logconf", random_state=0).fit(MC, MC_Y, y_proba=soft)
    base = LLMGenerator(tiny_lm, n_epochs=0, device="cpu").fit(MC, MC_Y)
    for est in (hard, logconf):
        assert est.predict_proba(MC).shape == (8, 3)
        assert not np.allclose(est.predict_proba(MC), base.predict_proba(MC))


# -- the pipeline: controls, losses, filtering, AUROC, per-question predictions -----------------
def test_pipeline_comparison_of_weak_sides_and_losses(tiny_lm):
    weak = LLMAdaBoostClassifier(_head(tiny_lm), n_estimators=3, sampling="reweight")
    uniform = UniformEnsembleClassifier(_head(tiny_lm), n_estimators=3)
    pipe = WeakToStrongPipeline(
        weak, _head(tiny_lm), controls=[("uniform", uniform)], student_losses=["xent", "logconf"],
        label_fraction=0.75, random_state=0,
    ).fit(TEXTS[:36], LABELS[:36], X_test=TEXTS[36:], y_test=LABELS[36:])
    report = pipe.report_[pipe.report_.model != "weak_round"]
    students = report[report.model == "ensemble_student"]
    assert sorted(zip(students.weak_side, students.loss)) == [
        ("ours", "logconf"), ("ours", "xent"), ("uniform", "logconf"), ("uniform", "xent")]
    assert set(report[report.model == "baseline_student"].loss) == {"xent", "logconf"}
    # every model answered every test question, and its accuracy comes from those answers
    pred = pipe.predictions_["hard"]
    assert pred["rows"].tolist() == list(range(14))
    for _, row in report.iterrows():
        name = f"{row.weak_side}/{row.model}/{row.loss if isinstance(row.loss, str) else '-'}"
        assert row.accuracy == pytest.approx(np.mean(pred["models"][name] == LABELS[36:]))
        assert 0 <= row.auroc <= 1  # binary: AUROC beside accuracy
    assert np.isfinite(report.gap_auroc).all()
    # the students trained on the 75% most confident labels; their accuracy against gold is reported
    labels = pipe.labels_.set_index("weak_side")
    assert set(labels.index) == {"ours", "uniform", "baseline"}
    assert (labels.n_kept == round(0.75 * labels.n_labels.iloc[0])).all()
    assert labels.loc["ours", "accuracy"] == pytest.approx(pipe.pseudo_label_accuracy_)
    # common random numbers: every student starts from one seed
    seeds = {est.random_state for est in pipe.students_.values()} | {pipe.ceiling_.random_state}
    seeds |= {est.random_state for est in pipe.baselines_.values()}
    assert len(seeds) == 1
    assert pipe.weak_.random_state == pipe.controls_["uniform"].random_state
    assert set(pipe.weak_disagreement_) == {("ours", "hard"), ("uniform", "hard")}


def test_student_labels_of_one_class_get_a_clear_error(tiny_lm):
    pipe = WeakToStrongPipeline(
        LLMAdaBoostClassifier(_head(tiny_lm), n_estimators=1), _head(tiny_lm),
        label_fraction=0.05, random_state=0)
    with pytest.raises(ValueError, match="a classifier cannot learn from one class") as info:
        pipe.fit(TEXTS, LABELS)
    # the label as the user wrote it, not numpy's repr of it
    assert re.search(r"are all ([01]|'[^']*') on the \d+ hard", str(info.value)), str(info.value)
    assert "np." not in str(info.value)


# -- paired statistics ----------------------------------------------------------------------------
def test_mcnemar_is_the_exact_binomial_test():
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    a = [rng.random(200) < 0.6 for _ in range(3)]
    b = [rng.random(200) < 0.55 for _ in range(3)]
    p, a_only, b_only = mcnemar(a, b)
    expected = binomtest(min(a_only, b_only), a_only + b_only, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-9)
    assert mcnemar([np.ones(5)], [np.ones(5)]) == (1.0, 0, 0)
    # by hand: 2 questions only a got right, 8 only b; 2 * P(X <= 2), X ~ Bin(10, 1/2)
    a, b = np.r_[np.ones(2), np.zeros(8), np.ones(5)], np.r_[np.zeros(2), np.ones(8), np.ones(5)]
    assert mcnemar([a], [b]) == (pytest.approx(2 * (1 + 10 + 45) / 1024, rel=1e-12), 2, 8)
    assert mcnemar([a[:4]], [b[:4]])[0] == 1.0  # 2 against 2: a tie


def _seeds_with_differences(points, n=2000, seed=0):
    """One pair of 0/1 arrays per seed whose accuracies differ by exactly ``points`` / 100."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for d in points:
        base = (rng.random(n) < 0.5).astype(float)
        other = base.copy()
        flip = np.flatnonzero(base == 0)[: round(abs(d) / 100 * n)]
        other[flip] = 1
        a, b = (a + [other], b + [base]) if d > 0 else (a + [base], b + [other])
    return a, b


def test_seed_interval_is_a_t_interval_on_the_per_seed_differences():
    a, b = _seeds_with_differences([1.0, 3.0, 2.0])
    low, high, sd = seed_interval(a, b)
    # mean 2 points, sd 1 point, t_{0.975, 2} = 4.302653
    assert sd == pytest.approx(0.01)
    assert (low, high) == (pytest.approx(0.02 - 4.302653 * 0.01 / 3**0.5),
                           pytest.approx(0.02 + 4.302653 * 0.01 / 3**0.5))
    assert all(np.isnan(seed_interval(a[:1], b[:1])))  # one seed: no seed-level spread
    one = paired_comparison(a[:1], b[:1], n_boot=200)
    assert np.isnan(one["seed_half_width"]) and np.isfinite(one["half_width"])


def test_seed_interval_sees_the_spread_the_bootstrap_over_three_seeds_misses():
    a, b = _seeds_with_differences([5.0, -3.0, 1.0])
    stats = paired_comparison(a, b, n_boot=2000)
    assert stats["diff"] == pytest.approx(0.01)
    assert (stats["seed_ci_low"], stats["seed_ci_high"]) == pytest.approx(seed_interval(a, b)[:2])
    assert stats["seed_half_width"] == pytest.approx(4.302653 * 0.04 / 3**0.5, rel=1e-5)
    assert stats["seed_half_width"] > 2 * stats["half_width"]  # the bootstrap: about +-2.7


def test_seeds_for_half_width_is_the_smallest_t_interval_within_it():
    # sd 1 point, target 1.5: n = 4 gives 3.182 / 2 = 1.59, n = 5 gives 2.776 / 2.236 = 1.24
    assert seeds_for_half_width(0.01, 0.015) == 5
    assert seeds_for_half_width(0.0, 0.015) == 2
    assert seeds_for_half_width(float("nan"), 0.015) is None
    assert seeds_for_half_width(0.01, 0.015, max_seeds=4) is None
    from scipy.stats import t

    n = seeds_for_half_width(0.0165, 0.015)

    def half(k):
        return t.ppf(0.975, k - 1) * 0.0165 / k**0.5

    assert half(n) <= 0.015 < half(n - 1)


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(1)
    base = [rng.random(2000) < 0.6 for _ in range(4)]
    better = [np.where(rng.random(2000) < 0.1, 1, x) for x in base]  # +~4 points, paired
    mean, low, high = paired_bootstrap(better, base, n_boot=2000)
    assert low < mean < high and low > 0
    assert mean == pytest.approx(np.mean([np.mean(x) - np.mean(y) for x, y in zip(better, base)]))
    assert paired_bootstrap(better, base, n_boot=2000) == (mean, low, high)  # seeded
    same = paired_comparison(base, base, n_boot=500)
    assert same["diff"] == 0 and same["half_width"] == 0 and same["p_mcnemar"] == 1
    assert same["seeds_a_ahead"] == same["seeds_b_ahead"] == 0  # ties count for neither
    mixed = paired_comparison([better[0], base[1], base[2]], [base[0], better[1], base[2]],
                              n_boot=200)
    assert (mixed["seeds_a_ahead"], mixed["seeds_b_ahead"], mixed["n_seeds"]) == (1, 1, 3)
    assert mixed["n_questions"] == 6000
    as_lists = paired_comparison([list(x) for x in better[:2]], [list(x) for x in base[:2]],
                                 n_boot=200)
    assert as_lists == paired_comparison(better[:2], base[:2], n_boot=200)
    with pytest.raises(ValueError, match="same questions"):
        paired_comparison([np.ones(3)], [np.ones(4)])
    with pytest.raises(ValueError, match="same questions"):
        paired_bootstrap([np.ones(3)], [np.ones(4)])
    with pytest.raises(ValueError, match="one array per seed"):
        paired_bootstrap([np.ones(3)], [])


def test_generator_combine_learned_fits_token_level_weights(tiny_lm):
    boost = TokenAdaBoostGenerator(_gen(tiny_lm), n_estimators=2, combine="learned",
                                   validation_fraction=0.25, random_state=0)
    X = pd.concat([MC, MC], ignore_index=True)
    y = np.concatenate([MC_Y, MC_Y])
    boost.fit(X, y)
    w = boost.combination_weights_
    assert w.shape == (len(boost.estimators_),) and np.isclose(w.sum(), 1) and np.all(w >= 0)
    # inference mixes probabilities with the learned weights, not the alphas
    experts, weights, combine = boost._mixture_parts()
    np.testing.assert_array_equal(weights, w)
    assert combine == "prob"
    assert boost.predict_proba(MC).shape == (8, 3)
    # the rounds trained on the 12 rows that were not held out
    assert all(h["n_samples_trained"] <= 12 for h in boost.history_)
