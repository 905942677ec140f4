import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from skw2s.core.metrics import make_pgr_scorer, mean_sem, pgr_score


def test_pgr_values():
    assert pgr_score(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert pgr_score(0.6, 0.6, 0.8) == pytest.approx(0.0)
    assert pgr_score(0.6, 0.9, 0.8) == pytest.approx(1.5)  # students can beat the ceiling
    assert pgr_score(0.6, 0.5, 0.8) == pytest.approx(-0.5)
    np.testing.assert_allclose(pgr_score(0.5, [0.5, 0.75], 1.0), [0.0, 0.5])


def test_pgr_undefined_without_gap():
    with pytest.warns(UserWarning, match="undefined"):
        assert np.isnan(pgr_score(0.7, 0.8, 0.7))
    with pytest.warns(UserWarning, match="undefined"):
        out = pgr_score([0.7, 0.5], 0.8, 0.7)
    assert np.isnan(out[0]) and out[1] == pytest.approx(1.5)


def test_pgr_scorer_in_grid_search():
    rng = np.random.RandomState(0)
    X = rng.randn(80, 3)
    y = (X[:, 0] > 0).astype(int)
    scorer = make_pgr_scorer(0.5, 1.0)
    search = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, scoring=scorer, cv=2).fit(X, y)
    acc = search.best_estimator_.score(X, y)
    assert scorer(search.best_estimator_, X, y) == pytest.approx((acc - 0.5) / 0.5)
    with pytest.raises(ValueError, match="weak_score"):
        make_pgr_scorer(float("nan"), 1.0)


def test_mean_sem():
    mean, sem = mean_sem([1.0, 2.0, 3.0])
    assert mean == 2.0 and sem == pytest.approx(1.0 / np.sqrt(3))
    assert np.isnan(mean_sem([1.0])[1])
