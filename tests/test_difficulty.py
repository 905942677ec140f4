import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.base import clone

from skw2s.w2s.difficulty import DifficultySplitter, per_example_error


def _data(n=60, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 2)
    margin = X[:, 0]
    y = (margin + 0.3 * rng.randn(n) > 0).astype(int)
    return X, y, np.abs(margin)


def test_cross_validated_difficulty_tracks_margin():
    X, y, margin = _data(200)
    splitter = DifficultySplitter(LogisticRegression(), n_splits=4, random_state=0).fit(X, y)
    assert splitter.difficulty_.shape == (200,)
    assert np.all((splitter.difficulty_ >= 0) & (splitter.difficulty_ <= 1))
    easy, hard = splitter.split()
    assert len(easy) == 100 and len(hard) == 100 and not set(easy) & set(hard)
    # far from the boundary is easy
    assert margin[easy].mean() > margin[hard].mean()
    assert splitter.difficulty_[easy].max() <= splitter.difficulty_[hard].min()


def test_held_out_error_is_from_models_that_did_not_see_the_row():
    X, y, _ = _data(40)
    a = DifficultySplitter(LogisticRegression(), n_splits=2, random_state=1).fit(X, y)
    full = LogisticRegression().fit(X, y)
    assert not np.allclose(a.difficulty_, per_example_error(full, X, y))


def test_parallel_folds_match_serial():
    X, y, _ = _data(60)
    serial = DifficultySplitter(LogisticRegression(), n_splits=3, random_state=0).fit(X, y)
    parallel = DifficultySplitter(LogisticRegression(), n_splits=3, n_jobs=2,
                                  random_state=0).fit(X, y)
    np.testing.assert_allclose(serial.difficulty_, parallel.difficulty_)


def test_transform_keeps_rows_and_rejects_other_data():
    X, y, _ = _data(30)
    s = DifficultySplitter(LogisticRegression(), n_splits=3, random_state=0)
    out = s.fit_transform(X, y)
    assert out.shape == (30, 1)
    np.testing.assert_array_equal(s.transform(X), out)
    with pytest.raises(ValueError, match="only the data it was fitted on"):
        s.transform(X[:10])


def test_precomputed_difficulty_and_callable():
    X = pd.DataFrame({"prompt": list("abcdef")})
    grades = np.array([8, 3, 5, 3, 9, 4])
    easy, hard = DifficultySplitter(difficulty=grades, random_state=0).fit(X).split()
    assert sorted(grades[easy]) == [3, 3, 4]
    s = DifficultySplitter(difficulty=lambda X: X["prompt"].map(ord).to_numpy(),
                           easy_fraction=1 / 3)
    easy, _ = s.fit(X).split()
    assert easy.tolist() == [0, 1]


def test_ties_are_split_reproducibly():
    X = ["x"] * 10
    a = DifficultySplitter(difficulty=np.zeros(10), random_state=3).fit(X).split()[0]
    b = DifficultySplitter(difficulty=np.zeros(10), random_state=3).fit(X).split()[0]
    assert len(a) == 5 and a.tolist() == b.tolist()


def _grade_splitter(pool_grades, seed=0):
    return DifficultySplitter(difficulty=lambda X: np.asarray(X, dtype=float),
                              random_state=seed).fit(list(pool_grades))


def test_hard_mask_splits_tied_test_rows_by_the_pool_share():
    # pool: 4 rows below 8, 6 at 8, easy_fraction 0.5 -> 1 of the 6 tied rows is easy
    s = _grade_splitter([5, 6, 6, 7, 8, 8, 8, 8, 8, 8])
    assert s.threshold_ == 8.0 and s.tie_hard_fraction_ == pytest.approx(5 / 6)
    test = [9.0] * 50 + [7.0] * 50 + [8.0] * 6000
    mask = s.hard_mask(test)
    assert mask[:50].all() and not mask[50:100].any()
    # the tied share follows the pool's (binomial sd about 0.005 at 6000 draws)
    assert abs(mask[100:].mean() - 5 / 6) < 0.025
    # seeded: the same splitter gives the same mask; another random_state another one
    assert (s.hard_mask(test) == mask).all()
    assert not (s.hard_mask(test, random_state=1) == mask).all()


def test_hard_mask_without_a_crossing_tie_is_the_strict_threshold():
    s = _grade_splitter([1, 2, 3, 4, 5, 6])          # no ties: the threshold row is easy
    assert s.threshold_ == 3.0 and s.tie_hard_fraction_ == 0.0
    assert s.hard_mask([2.0, 3.0, 3.0, 3.5, 9.0]).tolist() == [False, False, False, True, True]
    s = _grade_splitter([1, 1, 1, 2, 2, 2])           # the threshold's tied rows are all easy
    assert s.tie_hard_fraction_ == 0.0 and not s.hard_mask([1.0] * 20).any()
    s = _grade_splitter([1, 1, 1, 1, 2, 2], seed=4)  # 1 of the 4 tied rows went hard
    assert s.tie_hard_fraction_ == pytest.approx(0.25)
    assert 0 < s.hard_mask([1.0] * 400).sum() < 400


@pytest.mark.parametrize(
    "kwargs, n, match",
    [
        ({"estimator": LogisticRegression(), "n_splits": 10}, 5,
         "Cannot make n_splits=10 folds out of 5"),
        ({"estimator": LogisticRegression(), "n_splits": 1}, 10, "n_splits"),
        ({"difficulty": np.arange(3), "easy_fraction": 0.1}, 3, "leaves the easy side empty"),
        ({"difficulty": np.arange(3), "easy_fraction": 0.9}, 3, "leaves the hard side empty"),
        ({"difficulty": np.arange(3), "easy_fraction": 1.5}, 3, "easy_fraction"),
        ({}, 4, "needs an 'estimator'"),
        ({"difficulty": np.arange(2)}, 4, "one finite number per row"),
    ],
)
def test_bad_configuration_messages(kwargs, n, match):
    X, y, _ = _data(n)
    with pytest.raises(ValueError, match=match):
        DifficultySplitter(**kwargs).fit(X, y)


def test_clone_and_params():
    s = DifficultySplitter(LogisticRegression(C=2.0), n_splits=3)
    assert s.get_params()["estimator__C"] == 2.0
    assert clone(s).get_params()["n_splits"] == 3
