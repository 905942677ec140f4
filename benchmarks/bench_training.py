"""P7: training efficiency: useful FLOPs over seconds x the float32 matmul rate, before and after.

Trains the learners of the paired runs (``benchmarks/paired/``) one epoch each on the same rows,
on the plain paths ("before") and on the fast ones ("after"):

- **ARC weak learner**: SFT of ``smollm2-135m[:24]`` with LoRA (r=16) on ARC-Easy train
  questions and their gold options (batches of 8, at most 128 tokens). Before: logits and
  cross-entropy at every position, random batches. After: answer-only logits, length-grouped
  batches. Between them, answer-only logits with random batches, to part the two gains;
- **SciQ weak learner**: the LoRA classifier on ``smollm2-135m[:6]`` on binarised SciQ train
  questions (batches of 16, at most 96 tokens). Before: random batches; after: length-grouped
  (a classifier has no vocabulary projection to save);
- **ARC students**: ``smollm2-135m`` with LoRA, SFT (as above) and ``choice_logconf`` on the
  same questions (batches of 8 questions). Choice before: every option a whole sequence, random
  batches; after: each prompt once, the options as the continuation of its KV cache,
  length-grouped batches. The issue's target is the choice student's time at most 1.5 x the
  SFT student's.

Useful FLOPs follow the counting rule of :mod:`skw2s.hf.efficiency` (the body on every token
whose output predicts one, read once; the head on every position a loss reads; backward by
what trains), the same as the seed files. Efficiency = useful FLOPs / (training seconds x the
float32 rate of 2048 x 2048 products, timed just before each run in the same process), so a
busy spell of the shared machine slows both sides of the ratio alike. Every repeat runs every
case, in a rotating order; figures are medians over repeats (a speedup is the median of the
per-repeat ratios). The table also gives each case's tokens, padding and projected rows, and
the padding of the paired runs' own training sets (300 ARC questions, 2000 SciQ rows) under
random and length-grouped batches, from the batch order alone.

Usage::

    python benchmarks/bench_training.py --quick              # tiny random model, ~1 minute
    python benchmarks/bench_training.py --threads 2          # the paired runs' learners, ~15 min
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _perf  # noqa: E402

TARGET_EFFICIENCY = 0.7
TARGET_CHOICE_RATIO = 1.5


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------
def arc_rows(n, data_dir):
    """``(prompts, choices, labels, source)``: the first ``n`` ARC-Easy train questions, or
    built-in look-alikes (the first option as the label) when the offline data is absent."""
    try:
        from skw2s.data.datasets import load_arc, to_multiple_choice

        X, y = to_multiple_choice(load_arc("easy", "train", data_dir=data_dir))
        X, y = X.iloc[:n], y[:n]
        return X.prompt.tolist(), [list(c) for c in X.choices], list(y), "ARC-Easy train"
    except Exception:  # noqa: BLE001 - any missing data: the built-in questions
        reps = -(-n // len(_perf.QUICK_PROMPTS))
        prompts = (_perf.QUICK_PROMPTS * reps)[:n]
        return prompts, (_perf.QUICK_CHOICES * reps)[:n], [0] * n, "built-in ARC-like"


def sciq_rows(n, data_dir):
    """``(texts, labels, source)``: the first ``n`` binarised SciQ train questions (as the
    paired runs build them), or built-in look-alikes."""
    try:
        from skw2s.data.datasets import binarize_sciq, load_sciq, to_classification

        texts, labels = to_classification(binarize_sciq(load_sciq("train", data_dir=data_dir),
                                                        random_state=0))
        return texts[:n], labels[:n], "SciQ train (binarised)"
    except Exception:  # noqa: BLE001
        texts = [f"{p} {c[k % len(c)]}" for k in range(2)
                 for p, c in zip(_perf.QUICK_PROMPTS, _perf.QUICK_CHOICES)]
        reps = -(-n // len(texts))
        return (texts * reps)[:n], np.arange(n) % 2, "built-in SciQ-like"


# ----------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------
def _sft_case(base, tok, encoded, *, answer_only, group, batch_size, lr, lora_r):
    from skw2s.hf.training import seeded_torch, train_causal_lm

    def fit():
        model = copy.deepcopy(base)
        with seeded_torch(0):
            train_causal_lm(model, tok, encoded, mode="lora", lr=lr, n_epochs=1,
                            batch_size=batch_size, random_state=0, lora_r=lora_r,
                            answer_only=answer_only, group_by_length=group)
    return fit


def _choice_case(base, tok, prompts, choices, labels, *, share, group, batch_size, lr, lora_r,
                 max_length):
    from skw2s.hf.choice_training import train_choice_lm
    from skw2s.hf.losses import get_loss

    def fit():
        model = copy.deepcopy(base)
        with _seeded():
            train_choice_lm(model, tok, prompts, choices, labels, get_loss("choice_logconf"),
                            mode="lora", lr=lr, n_epochs=1, batch_size=batch_size,
                            max_length=max_length, random_state=0, lora_r=lora_r,
                            share_prompts=share, group_by_length=group)
    return fit


def _classifier_case(base, tok, texts, labels, *, group, batch_size, lr, lora_r, max_length):
    from skw2s.hf.training import train_classifier

    def fit():
        model = copy.deepcopy(base)
        with _seeded():
            train_classifier(model, tok, texts, labels, mode="lora", lr=lr, n_epochs=1,
                             batch_size=batch_size, max_length=max_length, random_state=0,
                             lora_r=lora_r, group_by_length=group)
    return fit


def _seeded():
    from skw2s.hf.training import seeded_torch

    return seeded_torch(0)


def measure(cases, *, repeats, warmup, log=print):
    """Run every case ``repeats`` times, rotating the order, each right after a float32 matmul
    rate measurement. Returns ``{name: [{"stats": dict, "rate": float}, ...]}``."""
    from skw2s.hf.efficiency import collect_training_stats, matmul_rate

    for name, fit in warmup.items():
        fit()
    names = list(cases)
    runs = {k: [] for k in names}
    for rep in range(repeats):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for k in order:
            rate = matmul_rate(cached=False)
            with collect_training_stats() as stats:
                cases[k]()
            runs[k].append({"stats": stats.as_dict(), "rate": rate})
            log(f"  repeat {rep + 1}/{repeats} {k}: {stats.seconds:.2f} s, "
                f"efficiency {stats.efficiency(rate):.3f} (rate {rate / 1e9:.0f} GFLOP/s)")
    return runs


def _efficiency(run):
    return run["stats"]["useful_flops"] / (run["stats"]["seconds"] * run["rate"])


def _median_ratio(runs, num, den):
    return float(np.median([a["stats"]["seconds"] / b["stats"]["seconds"]
                            for a, b in zip(runs[num], runs[den])]))


def summarise(runs, baselines):
    """One table row per case: medians over repeats, the efficiency of the best repeat (the
    machine is shared, and a busy neighbour only ever slows a run down), counts of the last
    run (the same every repeat), the speedup over its ``baselines[name]`` case."""
    rows = []
    for name, rs in runs.items():
        last = rs[-1]["stats"]
        base = baselines.get(name)
        rows.append({
            "case": name,
            "seconds": f"{np.median([r['stats']['seconds'] for r in rs]):.2f}",
            "matmul GFLOP/s": f"{np.median([r['rate'] for r in rs]) / 1e9:.0f}",
            "useful GFLOP": f"{last['useful_flops'] / 1e9:.0f}",
            "efficiency": f"{np.median([_efficiency(r) for r in rs]):.2f}",
            "best repeat": f"{max(_efficiency(r) for r in rs):.2f}",
            "speedup": "" if base is None else f"{_median_ratio(runs, base, name):.2f}x",
            "tokens": last["tokens"],
            "padded tokens": last["padded_tokens"],
            "padding": f"{last['padding']:.1%}",
            "projected rows": last["projected_rows"],
            "loss rows": last["loss_rows"],
        })
    return rows


def profile_step(base, tok, encoded, *, lora_r):
    """Where one answer-only SFT step's time goes: forward and backward of a batch of rows of
    similar length under torch's profiler, with the matmul FLOPs it counts.

    Returns the step's useful FLOPs, the matmuls' FLOPs, their share of the profiled CPU time,
    their rate, and the float32 rate timed just before, so that efficiency = (useful / matmul
    FLOPs) x (matmul share) x (matmul rate / float32 rate), up to the profiler's overhead.
    """
    from torch.profiler import ProfilerActivity, profile

    from skw2s.hf.efficiency import matmul_rate, parameter_counts, useful_flops
    from skw2s.hf.training import _SFTCollator, _apply_lora, seeded_torch, sft_loss

    with seeded_torch(0):
        model = _apply_lora(copy.deepcopy(base), task_type="CAUSAL_LM", lora_r=lora_r,
                            lora_alpha=None, target_modules=None)
    model.train()
    order = np.argsort([len(e.input_ids) for e in encoded], kind="stable")
    middle = order[len(order) // 2 - 4 : len(order) // 2 + 4]  # 8 rows of the median length
    rows = [{"input_ids": encoded[i].input_ids,
             "token_weight": [0.0] * encoded[i].answer_start + [1.0] * encoded[i].n_answer_tokens}
            for i in middle]
    batch = _SFTCollator(tok.pad_token_id)(rows)
    hf = model.get_base_model()
    counts = parameter_counts(hf, hf.get_output_embeddings())

    def step():
        loss, _, c = sft_loss(model, batch["input_ids"], batch["attention_mask"],
                              batch["token_weight"])
        loss.backward()
        return c

    step()  # warm-up
    rate = matmul_rate(cached=False)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        c = step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    mm = [e for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm")]
    mm_seconds = sum(e.self_cpu_time_total for e in mm) / 1e6
    mm_flops = float(sum(e.flops for e in mm))
    useful = useful_flops(counts, c["useful_tokens"], c["loss_rows"])
    return {"rows": len(middle), "tokens": c["tokens"], "padded_tokens": c["padded_tokens"],
            "useful_flops": useful, "matmul_flops": mm_flops, "profiled_seconds": total,
            "matmul_seconds": mm_seconds, "matmul_share": mm_seconds / total,
            "matmul_rate": mm_flops / mm_seconds, "float32_rate": rate,
            "step_efficiency": useful / (total * rate)}


def paired_padding(lengths, batch_size, *, epochs, seed=0):
    """Padding of one training set's batches over ``epochs``: random batches (the Trainer's
    random order) and length-grouped ones (:class:`skw2s.hf.training.LengthGroupedSampler`)."""
    from skw2s.hf.training import LengthGroupedSampler, padding_fraction

    lengths = np.asarray(lengths)
    rng = np.random.default_rng(seed)
    sampler = LengthGroupedSampler(lengths, batch_size, seed)
    random, grouped = [], []
    for _ in range(epochs):
        for order, out in ((rng.permutation(len(lengths)), random),
                           (np.array(list(sampler)), grouped)):
            out += [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return {"random": padding_fraction(lengths, random),
            "grouped": padding_fraction(lengths, grouped)}


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------
def run(args):
    from skw2s.data.datasets import format_completion
    from skw2s.hf.models import load_causal_lm, load_sequence_classifier
    from skw2s.hf.training import encode_sft, seeded_torch

    device, threads = _perf.setup(args.threads, args.device)
    info = _perf.machine_info(device, threads)
    _perf.print_header("P7: training efficiency (useful FLOPs / seconds x matmul rate)", info)
    quick = args.quick
    n_arc = args.n_arc or (24 if quick else 128)
    n_student = args.n_student or (16 if quick else 64)
    n_sciq = args.n_sciq or (48 if quick else 256)
    repeats = args.repeats or (2 if quick else 3)
    if quick:
        path = _perf.tiny_model(n_layers=4, hidden_size=128)
        weak_spec = student_spec = sciq_spec = path
    else:
        weak_spec, student_spec, sciq_spec = args.model + "[:24]", args.model, args.model + "[:6]"

    prompts, choices, labels, arc_source = arc_rows(max(n_arc, n_student, 300), args.data_dir)
    texts, sciq_labels, sciq_source = sciq_rows(max(n_sciq, 2000), args.data_dir)
    answers = [format_completion(c[i]) for c, i in zip(choices, labels)]

    weak, tok = load_causal_lm(weak_spec, device=str(device))
    student, student_tok = load_causal_lm(student_spec, device=str(device))
    with seeded_torch(0):  # the new classification head
        sciq, sciq_tok = load_sequence_classifier(sciq_spec, num_labels=2, device=str(device))
    sciq_tok.truncation_side = "left"

    enc_weak = encode_sft(tok, prompts[:n_arc], answers[:n_arc], max_length=128)
    enc_student = encode_sft(student_tok, prompts[:n_student], answers[:n_student], max_length=128)
    sft = dict(batch_size=8, lr=2e-3, lora_r=16)
    cls = dict(batch_size=16, lr=1e-3, lora_r=16, max_length=96)
    choice = dict(batch_size=8, lr=2e-3, lora_r=16, max_length=128)
    Ps, Cs, Ls = prompts[:n_student], choices[:n_student], labels[:n_student]
    cases = {
        "ARC weak SFT, before": _sft_case(weak, tok, enc_weak, answer_only=False, group=False,
                                          **sft),
        "ARC weak SFT, answer-only logits": _sft_case(weak, tok, enc_weak, answer_only=True,
                                                      group=False, **sft),
        "ARC weak SFT, after": _sft_case(weak, tok, enc_weak, answer_only=True, group=True, **sft),
        "SciQ weak classifier, before": _classifier_case(
            sciq, sciq_tok, texts[:n_sciq], sciq_labels[:n_sciq], group=False, **cls),
        "SciQ weak classifier, after": _classifier_case(
            sciq, sciq_tok, texts[:n_sciq], sciq_labels[:n_sciq], group=True, **cls),
        "ARC student SFT, before": _sft_case(student, student_tok, enc_student,
                                             answer_only=False, group=False, **sft),
        "ARC student SFT, after": _sft_case(student, student_tok, enc_student, answer_only=True,
                                            group=True, **sft),
        "ARC student choice_logconf, before": _choice_case(
            student, student_tok, Ps, Cs, Ls, share=False, group=False, **choice),
        "ARC student choice_logconf, after": _choice_case(
            student, student_tok, Ps, Cs, Ls, share=True, group=True, **choice),
    }
    baselines = {
        "ARC weak SFT, answer-only logits": "ARC weak SFT, before",
        "ARC weak SFT, after": "ARC weak SFT, before",
        "SciQ weak classifier, after": "SciQ weak classifier, before",
        "ARC student SFT, after": "ARC student SFT, before",
        "ARC student choice_logconf, after": "ARC student choice_logconf, before",
    }
    few = 8  # the warm-up trains every path once on a few rows
    warmup = {
        "sft": _sft_case(weak, tok, enc_weak[:few], answer_only=True, group=True, **sft),
        "sft plain": _sft_case(weak, tok, enc_weak[:few], answer_only=False, group=False, **sft),
        "classifier": _classifier_case(sciq, sciq_tok, texts[:few], sciq_labels[:few],
                                       group=True, **cls),
        "choice": _choice_case(student, student_tok, Ps[:few], Cs[:few], Ls[:few], share=True,
                               group=True, **choice),
        "choice plain": _choice_case(student, student_tok, Ps[:few], Cs[:few], Ls[:few],
                                     share=False, group=False, **choice),
    }
    print(f"\n{n_arc} ARC weak rows, {n_student} ARC student questions ({arc_source}), "
          f"{n_sciq} SciQ rows ({sciq_source}); one epoch each; {repeats} repeats")
    runs = measure(cases, repeats=repeats, warmup=warmup)
    rows = summarise(runs, baselines)
    print()
    _perf.print_table(rows, list(rows[0]))

    ratio = {
        stage: _median_ratio(runs, f"ARC student choice_logconf, {stage}",
                             f"ARC student SFT, {stage}")
        for stage in ("before", "after")
    }
    best_ratio = {  # the fastest repeat of each: the least disturbed by the neighbours
        stage: min(r["stats"]["seconds"] for r in runs[f"ARC student choice_logconf, {stage}"])
        / min(r["stats"]["seconds"] for r in runs[f"ARC student SFT, {stage}"])
        for stage in ("before", "after")
    }
    efficiency = {name: float(np.median([_efficiency(r) for r in runs[name]]))
                  for name in runs}
    print(f"\nchoice_logconf student / SFT student, training time on the same questions: "
          f"before {ratio['before']:.2f}x, after {ratio['after']:.2f}x (fastest repeats: "
          f"{best_ratio['before']:.2f}x, {best_ratio['after']:.2f}x): "
          f"{_perf.verdict(ratio['after'], TARGET_CHOICE_RATIO, quick=quick)}")
    for name in ("ARC weak SFT, after", "SciQ weak classifier, after"):
        print(f"{name}: efficiency {efficiency[name]:.2f}: "
              f"{_perf.verdict(efficiency[name], TARGET_EFFICIENCY, at_least=True, quick=quick)}")

    prof = profile_step(weak, tok, enc_weak, lora_r=sft["lora_r"])
    print(f"\nOne answer-only SFT step of the ARC weak learner under the profiler "
          f"({prof['rows']} rows of the median length, {prof['padded_tokens']} positions): "
          f"matmuls are {prof['matmul_share']:.0%} of the time, at "
          f"{prof['matmul_rate'] / 1e9:.0f} GFLOP/s against {prof['float32_rate'] / 1e9:.0f} "
          f"for 2048 x 2048 products; useful / matmul FLOPs "
          f"{prof['useful_flops'] / prof['matmul_flops']:.2f}; the step's efficiency "
          f"{prof['step_efficiency']:.2f} (profiler overhead included)")

    # padding of the paired runs' own training sets, from the batch order alone
    arc_lengths = [len(e.input_ids) for e in encode_sft(tok, prompts[:300], answers[:300],
                                                        max_length=128)]
    sciq_lengths = [len(ids) for ids in sciq_tok(list(texts[:2000]), truncation=True,
                                                 max_length=96)["input_ids"]]
    paired = {
        "ARC weak SFT (300 rows, batches of 8, 2 epochs)": paired_padding(arc_lengths, 8,
                                                                          epochs=2),
        "SciQ weak classifier (2000 rows, batches of 16, 1 epoch)": paired_padding(
            sciq_lengths, 16, epochs=1),
    }
    print("\nPadding of the paired runs' training sets (batch order only, no training):")
    prow = [{"training set": k, "random batches": f"{v['random']:.1%}",
             "length-grouped": f"{v['grouped']:.1%}"} for k, v in paired.items()]
    _perf.print_table(prow, list(prow[0]))

    payload = {
        "benchmark": "P7 training efficiency",
        "machine": info,
        "settings": {"n_arc": n_arc, "n_student": n_student, "n_sciq": n_sciq,
                     "repeats": repeats, "models": [weak_spec, student_spec, sciq_spec],
                     "sources": [arc_source, sciq_source], "sft": sft, "classifier": cls,
                     "choice": choice, "epochs": 1},
        "runs": runs,
        "rows": rows,
        "efficiency": efficiency,
        "choice_over_sft": ratio,
        "choice_over_sft_fastest": best_ratio,
        "paired_padding": paired,
        "profiled_step": prof,
        "targets": {"efficiency": TARGET_EFFICIENCY, "choice_over_sft": TARGET_CHOICE_RATIO},
    }
    _perf.write_json(_perf.result_name("training", args, device), payload, args)
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _perf.common_arguments(parser)
    parser.add_argument("--n-arc", type=int, default=None, help="ARC weak SFT rows")
    parser.add_argument("--n-student", type=int, default=None, help="ARC student questions")
    parser.add_argument("--n-sciq", type=int, default=None, help="SciQ classifier rows")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
