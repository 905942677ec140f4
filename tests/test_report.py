"""Aggregation of per-seed reports: paired gains, per-test-set rows and the round table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skw2s.experiment import report
from skw2s.experiment.report import (aggregate, find_run_dirs, id_ood_table, load_runs,
                                     rounds_table, summary_table, write_report)


def _runs(split_kind="easy_hard"):
    rows = []
    for seed, (single, ens, base, ours, ceil) in enumerate([(0.5, 0.6, 0.55, 0.65, 0.8),
                                                            (0.4, 0.45, 0.5, 0.5, 0.7)]):
        for test, shift in (("hard", 0.0), ("easy", 0.1)):
            for model, rnd, acc in [("weak_single", 1, single), ("weak_round", 1, single),
                                    ("weak_round", 2, ens), ("weak_ensemble", 2, ens),
                                    ("baseline_student", 1, base),
                                    ("ensemble_student", 2, ours), ("ceiling", np.nan, ceil)]:
                rows.append({"run": "r", "seed": seed, "test": test, "model": model, "round": rnd,
                             "accuracy": acc + shift, "token_error": 1 - acc, "pgr": np.nan,
                             "gap": np.nan, "split_kind": split_kind})
    return pd.DataFrame(rows)


def test_gains_are_paired_per_seed():
    agg = aggregate(_runs())
    gain = agg[(agg.model == "student_gain") & (agg.test == "hard")].iloc[0]
    diffs = np.array([0.65 - 0.55, 0.5 - 0.5])
    assert gain.accuracy_mean == pytest.approx(diffs.mean())
    assert gain.accuracy_sem == pytest.approx(diffs.std(ddof=1) / np.sqrt(2))
    ens = agg[(agg.model == "ensemble_gain") & (agg.test == "hard")].iloc[0]
    assert ens.accuracy_mean == pytest.approx(np.mean([0.1, 0.05]))
    assert ens.token_error_mean == pytest.approx(-np.mean([0.1, 0.05]))
    summary = summary_table(agg)
    assert summary.loc[0, "ours - baseline"].startswith("0.050")
    assert summary.loc[0, "weak_single"].startswith("0.450")  # the hard test set, not the easy one


def test_round_and_id_ood_tables():
    agg = aggregate(_runs())
    rounds = rounds_table(agg)
    assert rounds["round"].tolist() == [1, 2]
    assert rounds.loc[1, "accuracy"].startswith("0.525")
    table = id_ood_table(agg).set_index("model")
    assert table.loc["weak ensemble", "ID (easy)"].startswith("0.625")
    assert table.loc["weak ensemble", "OOD (hard)"].startswith("0.525")


def test_seeds_with_different_ensemble_sizes_make_one_row_per_model():
    runs = _runs()
    late = (runs.seed == 1) & runs.model.isin(["weak_ensemble", "ensemble_student"])
    runs.loc[late, "round"] = 1  # seed 1 stopped boosting after one round
    agg = aggregate(runs)
    hard = agg[agg.test == "hard"]
    assert (hard.model == "weak_ensemble").sum() == 1
    row = hard[hard.model == "weak_ensemble"].iloc[0]
    assert row["round"] == 2 and row.n_seeds == 2
    assert summary_table(agg).loc[0, "weak_ensemble"].startswith("0.525")


def test_random_split_names_its_test_sets_without_hard_or_ood():
    table = id_ood_table(aggregate(_runs("random"))).set_index("model")
    assert table.loc["weak ensemble", "weak-side test"].startswith("0.625")
    assert table.loc["weak ensemble", "student-side test"].startswith("0.525")
    assert not any("OOD" in c or "ID (" in c for c in table.columns)


def _texts(fig):
    texts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        texts += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
        legend = ax.get_legend()
        if legend is not None:
            texts += [legend.get_title().get_text()] + [t.get_text() for t in legend.get_texts()]
    return " ".join(texts)


@pytest.mark.parametrize("split_kind", ["random", "easy_hard"])
def test_plots_say_sem_and_name_the_test_set_by_split_kind(split_kind):
    import matplotlib.pyplot as plt

    agg = aggregate(_runs(split_kind))
    for fig in (report._rounds_figure(agg), report._summary_figure(agg)):
        text = _texts(fig)
        assert "SEM" in text
        assert ("hard" in text) == (split_kind == "easy_hard")
        assert "OOD" not in text
        plt.close(fig)


def test_round_ticks_are_integers():
    import matplotlib.pyplot as plt

    runs = _runs()
    extra = runs[runs.model == "weak_round"].assign(round=lambda f: f["round"] + 2)  # rounds 1..4
    fig = report._rounds_figure(aggregate(pd.concat([runs, extra], ignore_index=True)))
    fig.canvas.draw()
    ticks = fig.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def _write_run(directory, name, split_kind="random", seeds=(0, 1)):
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    runs = _runs(split_kind)
    for seed in seeds:
        rows = (runs[(runs.seed == seed)].drop(columns=["run", "seed", "split_kind"])
                .to_dict("records"))
        record = {"name": name, "seed": seed, "config": {"split_kind": split_kind}, "report": rows}
        (directory / f"seed{seed}.json").write_text(json.dumps(record))


def test_report_finds_run_directories_below_a_folder(tmp_path):
    from skw2s.cli import main

    _write_run(tmp_path / "results" / "a" / "first", "first")
    _write_run(tmp_path / "results" / "b" / "second", "second", "easy_hard")
    (tmp_path / "results" / "b" / "second" / "cache" / "seed0").mkdir(parents=True)
    _write_run(tmp_path / "results" / ".cache" / "hidden", "hidden")
    capability = tmp_path / "results" / "capability" / "quartz" / "tiny"
    capability.mkdir(parents=True)
    (capability / "seed0.json").write_text(json.dumps({"task": "quartz", "seed": 0,
                                                       "trained": 0.5}))
    found = find_run_dirs([tmp_path / "results"])
    assert found == [tmp_path / "results" / "a" / "first", tmp_path / "results" / "b" / "second"]
    assert main(["report", str(tmp_path / "results"), "--output-dir", str(tmp_path / "out")]) == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary.run.tolist() == ["first", "second"]
    assert set(load_runs(found).split_kind) == {"random", "easy_hard"}
    with pytest.raises(FileNotFoundError, match="No run results in or below"):
        write_report([capability], tmp_path / "none")


def test_runs_that_share_a_name_are_keyed_by_their_folder(tmp_path):
    _write_run(tmp_path / "results" / "paired" / "same", "same")
    _write_run(tmp_path / "results" / "reproduce" / "same", "same", "easy_hard", seeds=(0,))
    _write_run(tmp_path / "results" / "reproduce" / "other", "other")
    found = find_run_dirs([tmp_path / "results"])
    assert report.run_names({d: d.name for d in found}) == {
        tmp_path / "results" / "paired" / "same": "paired/same",
        tmp_path / "results" / "reproduce" / "other": "other",
        tmp_path / "results" / "reproduce" / "same": "reproduce/same",
    }
    runs = load_runs(found)
    assert runs.groupby("run").seed.nunique().to_dict() == {
        "paired/same": 2, "reproduce/same": 1, "other": 2}
    summary = write_report([tmp_path / "results"], tmp_path / "out")
    assert summary.run.tolist() == ["paired/same", "other", "reproduce/same"]


README_REPORT = re.compile(r"`skw2s report (benchmarks/results) --output-dir (\S+)`")


@pytest.mark.slow
def test_the_readme_report_command_runs_on_the_committed_results(tmp_path):
    from skw2s.cli import main

    root = Path(__file__).resolve().parents[1]
    match = README_REPORT.search((root / "README.md").read_text())
    assert match, "the README no longer shows `skw2s report benchmarks/results --output-dir ...`"
    if not (root / match.group(1) / "paired").is_dir():
        pytest.skip("the committed results are not in this checkout")
    assert main(["report", str(root / match.group(1)), "--output-dir", str(tmp_path)]) == 0
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert {"paired/arc-easy-random", "reproduce/arc-easy-random"} <= set(summary.run)
    paired = pd.read_csv(tmp_path / "paired.csv")
    seeds = paired[paired.run == "paired/arc-easy-random"].n_seeds
    assert len(seeds) and (seeds == len(list((root / match.group(1) / "paired" / "arc-easy-random")
                                              .glob("seed*.json")))).all()


def test_test_sets_are_named_by_what_they_score():
    label = report.test_set_label
    # a random split with the official test split scores all of its questions, none "hard"
    assert label("hard", {"split_kind": "random", "test_split": "test"}) == "all"
    assert label("hard", {"split_kind": "random", "test_split": None}) == "student-side"
    assert label("easy", {"split_kind": "random"}) == "weak-side"
    assert label("hard", {"split_kind": "easy_hard", "test_split": "test"}) == "hard"
    assert label("easy", {"split_kind": "easy_hard"}) == "easy (ID)"
    assert label("hard", None) == "hard"  # a seed file without its config: as written


def _bars_with_error(fig):
    from matplotlib.container import BarContainer, ErrorbarContainer

    bars = [c for ax in fig.axes for c in ax.containers if isinstance(c, BarContainer)]
    lines = [c for ax in fig.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]
    return ([c.errorbar is not None for c in bars], [c.has_yerr for c in lines])


def test_one_seed_draws_no_error_bars_and_two_seeds_do():
    import matplotlib.pyplot as plt

    for seeds, expected in (((0,), False), ((0, 1), True)):
        agg = aggregate(_runs()[lambda f: f.seed.isin(seeds)])
        summary, rounds = report._summary_figure(agg), report._rounds_figure(agg)
        bars, _ = _bars_with_error(summary)
        _, lines = _bars_with_error(rounds)
        assert bars and set(bars) == {expected}, seeds
        assert lines and set(lines) == {expected}, seeds
        plt.close(summary)
        plt.close(rounds)


def _near_chance_run():
    """One seed of a 4-option task where every model is at or below chance (ARC-Challenge-like),
    with rounds that differ by one question in 200."""
    runs = _runs()[lambda f: f.seed == 0].copy()
    accuracy = {"weak_single": 0.190, "weak_round": 0.190, "weak_ensemble": 0.195,
                "baseline_student": 0.22, "ensemble_student": 0.23, "ceiling": 0.235}
    runs["accuracy"] = runs.model.map(accuracy)
    runs.loc[(runs.model == "weak_round") & (runs["round"] == 2), "accuracy"] = 0.195
    runs["gap"] = 0.235 - 0.190
    students = runs.model.str.endswith("student")
    runs["pgr"] = np.where(students, (runs.accuracy - 0.19) / 0.045, np.nan)
    return runs.assign(chance=0.25, n_test=200)


def test_plots_draw_chance_and_do_not_stretch_one_question_over_the_axis():
    import matplotlib.pyplot as plt

    agg = aggregate(_near_chance_run())
    for fig in (report._rounds_figure(agg), report._summary_figure(agg)):
        ax = fig.axes[0]
        low, high = ax.get_ylim()
        assert high - low >= 0.1  # the rounds differ by 0.005: one question in 200
        flat = [line for line in ax.get_lines() if len(set(line.get_ydata())) == 1]
        assert any(line.get_ydata()[0] == 0.25 for line in flat), "no chance line"
        assert low < 0.25 < high
        assert "chance" in _texts(fig)
        plt.close(fig)


def test_noise_warnings_flag_chance_and_a_gap_within_noise(tmp_path):
    agg = aggregate(_near_chance_run())
    lines = report.noise_warnings(agg)
    assert any("weak (1 learner) scores 0.190, below chance (0.250)" in line for line in lines)
    assert any("ceiling (gold) scores 0.235, below chance" in line for line in lines)
    # gap 0.045 on 200 questions of one seed: binomial SE sqrt((.235 * .765 + .19 * .81) / 200)
    se = np.sqrt((0.235 * 0.765 + 0.19 * 0.81) / 200)
    assert any(f"gap (ceiling − weak) is 0.045 with a standard error of {se:.3f}" in line
               and "PGR" in line for line in lines)
    assert summary_table(agg).loc[0, "pgr_ours"].endswith("(gap in noise)")
    # a clear gap well above chance, over two seeds of 1000 questions: nothing to flag
    clear = _runs().assign(chance=0.25, n_test=1000, gap=lambda f: 0.25)
    clear.loc[clear.model == "ceiling", "accuracy"] += 0.2
    assert report.noise_warnings(aggregate(clear)) == []
    assert "gap in noise" not in summary_table(aggregate(clear)).to_string()


def test_report_writes_the_warnings_below_the_summary(tmp_path):
    directory = tmp_path / "results" / "near-chance"
    directory.mkdir(parents=True)
    runs = _near_chance_run()
    rows = runs.drop(columns=["run", "seed", "split_kind", "chance", "n_test"]).to_dict("records")
    config = {"split_kind": "random", "task": "multiple_choice", "dataset": "arc_challenge"}
    record = {"name": "near-chance", "seed": 0, "config": config, "report": rows, "n_test": 200}
    (directory / "seed0.json").write_text(json.dumps(record))
    write_report([directory], tmp_path / "out")
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "Warnings:" in text and "below chance (0.250)" in text and "PGR" in text


def test_two_controls_are_compared_with_each_other_students_and_weak():
    from skw2s.experiment.comparison import comparisons

    models = ["ours/weak_single/-", "ours/weak_ensemble/-", "ours/baseline_student/xent",
              "ours/ensemble_student/xent", "uniform/weak_ensemble/-",
              "uniform/ensemble_student/xent", "reweight/weak_ensemble/-",
              "reweight/ensemble_student/xent"]
    pairs = {label: (a, b) for label, a, b in comparisons(models)}
    assert pairs["reweight − uniform (students)"] == ("reweight/ensemble_student/xent",
                                                      "uniform/ensemble_student/xent")
    assert pairs["reweight ensemble − uniform ensemble (weak)"] == ("reweight/weak_ensemble/-",
                                                                    "uniform/weak_ensemble/-")
    assert pairs["reweight − baseline (students)"][1] == "ours/baseline_student/xent"
    assert "ours − reweight (students)" in pairs and "uniform − reweight (students)" not in pairs
