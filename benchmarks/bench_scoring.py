"""P3: multiple-choice NLL scoring with the prompt encoded once per question.

Compares, on ARC-Easy test questions (built-in look-alikes when the offline data is absent):

- **per-choice loop**: one forward per (question, option) sequence (``share_prompts=False``,
  ``batch_size=1``): the plain reference;
- **per-choice batched**: the plain path with as many (question, option) sequences per forward
  as the fast path has options per batch: the prompt is still encoded once per option;
- **prompt once**: ``choice_nll`` as the estimators call it: each batch of questions runs its
  prompts once (logits of the last position only), then their options as continuations of
  the prompts' KV cache expanded per option (in forwards of options of similar length).

Then the same for the ensemble's staged multiple-choice scoring (``staged_predict``) with ``T``
LoRA experts on one base model: plain path with adapters one by one, prompt once with adapters
one by one, prompt once with all adapters in one forward (stacked LoRA). And teacher-forced
token predictions (the ``eps_t`` of every boosting round) on the plain and the fast path
(logits only in the answer columns).

Every figure is a ratio to a baseline timed in the same run (alternating repeats); the table
also shows the largest NLL difference from the reference, which should be float noise.

Usage::

    python benchmarks/bench_scoring.py --quick        # tiny random model, ~1 minute
    python benchmarks/bench_scoring.py                # smollm2-135m on CPU, a few minutes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _perf  # noqa: E402


def _nll_gap(a, b):
    a, b = np.concatenate(a), np.concatenate(b)
    return float(np.max(np.abs(a - b)))


def _agreement(a, b):
    return float(np.mean([np.argmin(x) == np.argmin(y) for x, y in zip(a, b)]))


def run(args):
    from skw2s.hf.decoding import choice_nll, choice_nll_mixture, token_predictions
    from skw2s.hf.training import encode_sft

    device, threads = _perf.setup(args.threads, args.device)
    info = _perf.machine_info(device, threads)
    quick = args.quick
    repeats = args.repeats or 3
    n_q = args.n_questions or (24 if quick else 32)
    n_mix = args.n_mixture_questions or (16 if quick else 16)
    spec = _perf.tiny_model() if quick else args.model
    model, tok = _perf.load(spec, device)
    prompts, choices, source = _perf.arc_questions(n_q, args.data_dir)
    bsz = args.batch_size
    n_options = sum(len(c) for c in choices)
    per_batch = max(1, round(bsz * n_options / n_q))
    _perf.print_header("P3 choice scoring", info)
    print(f"model {'tiny random (quick)' if quick else args.model}; {n_q} {source} questions, "
          f"{n_options} options; {bsz} questions per batch; {repeats} alternating repeats")

    enc = encode_sft(tok, [p for p, c in zip(prompts, choices) for _ in c],
                     [" " + o for c in choices for o in c], append_eos=False)
    prompt_tokens = sum(e.answer_start for e in enc)
    option_tokens = sum(e.n_answer_tokens for e in enc)
    distinct_prompt_tokens = sum(e.answer_start for e in encode_sft(
        tok, prompts, [" " + c[0] for c in choices], append_eos=False))
    tokens = {
        "per-choice": prompt_tokens + option_tokens,
        "prompt once": distinct_prompt_tokens + option_tokens - n_options,
    }

    def p3_fns(P, C):
        return {
            "per-choice loop": lambda: choice_nll(
                model, tok, P, C, batch_size=1, share_prompts=False),
            "per-choice batched": lambda: choice_nll(
                model, tok, P, C, batch_size=per_batch, share_prompts=False),
            "prompt once": lambda: choice_nll(model, tok, P, C, batch_size=bsz),
        }

    warm = (prompts[:2], choices[:2])  # cheap untimed warm-up on the same code paths
    times, res = _perf.interleaved(p3_fns(prompts, choices), repeats=repeats, device=device,
                                   warmup=p3_fns(*warm))
    ref = res["per-choice loop"]
    rows = []
    for name, target in (("per-choice loop", None), ("per-choice batched", None),
                         ("prompt once", 3.0)):
        speedup = _perf.ratio(times, "per-choice loop", name)
        vs_batched = _perf.ratio(times, "per-choice batched", name)
        rows.append({
            "case": name,
            "seconds": f"{_perf.median(times, name):.3f}",
            "tokens": tokens["prompt once" if name == "prompt once" else "per-choice"],
            "speedup vs loop": f"{speedup:.2f}x",
            "speedup vs batched": f"{vs_batched:.2f}x",
            "max |dNLL|": f"{_nll_gap(res[name], ref):.1e}",
            "argmin agrees": f"{_agreement(res[name], ref):.3f}",
            "target": ("" if target is None
                       else _perf.verdict(speedup, target, at_least=True, quick=args.quick)),
        })
    print("\nP3: single model, option NLLs (one row per path; speedups are time(baseline) / "
          "time(path))")
    _perf.print_table(rows, list(rows[0]))
    p3 = {"times": times, "rows": rows, "tokens": tokens}

    payload = {
        "benchmark": "scoring",
        "machine": info,
        "settings": {"quick": quick, "model": "tiny" if quick else args.model, "source": source,
                     "n_questions": n_q, "n_options": n_options, "batch_size": bsz,
                     "per_choice_batch": per_batch, "experts": args.experts,
                     "n_mixture_questions": n_mix, "repeats": repeats},
        "p3_single": p3,
    }
    if args.skip_ensemble:
        _perf.write_json(_perf.result_name("scoring", args, device), payload, args)
        return payload

    # -- the ensemble: T LoRA experts on one base, staged (staged_predict) ------------------
    # (get_peft_model wraps `model` in place, so this comes after the single-model part)
    _, experts = _perf.lora_experts(model, args.experts)
    alphas = np.linspace(1.0, 2.0, args.experts)
    mp, mc = prompts[:n_mix], choices[:n_mix]
    mix_per_batch = max(1, round(bsz * sum(len(c) for c in mc) / n_mix))
    def mix_fns(P, C):
        return {
            "plain, adapters one by one": lambda: choice_nll_mixture(
                experts, alphas, tok, P, C, staged=True, share_prompts=False,
                batch_adapters=False, batch_size=mix_per_batch),
            "prompt once, adapters one by one": lambda: choice_nll_mixture(
                experts, alphas, tok, P, C, staged=True, batch_adapters=False,
                batch_size=bsz),
            "prompt once, adapters batched": lambda: choice_nll_mixture(
                experts, alphas, tok, P, C, staged=True, batch_size=bsz),
        }

    mfns = mix_fns(mp, mc)
    print(f"\nEnsemble: {args.experts} LoRA experts on one base, staged scoring of {n_mix} "
          "questions")
    mtimes, mres = _perf.interleaved(mfns, repeats=args.repeats or (3 if quick else 2),
                                     device=device, warmup=mix_fns(*warm))
    mref = mres["plain, adapters one by one"][-1]
    mrows = []
    for name in mfns:
        mrows.append({
            "case": name,
            "seconds": f"{_perf.median(mtimes, name):.3f}",
            "speedup vs plain": f"{_perf.ratio(mtimes, 'plain, adapters one by one', name):.2f}x",
            "max |dNLL| (T experts)": f"{_nll_gap(mres[name][-1], mref):.1e}",
        })
    _perf.print_table(mrows, list(mrows[0]))

    # -- teacher-forced token predictions (eps_t of a boosting round), one expert ----------
    answers = [" " + c[0] for c in choices]
    enc_tf = encode_sft(tok, prompts, answers)
    tfns = {
        "token predictions, plain": lambda: token_predictions(
            experts[0], tok, enc_tf, batch_size=bsz, share_prompts=False),
        "token predictions, fast path": lambda: token_predictions(
            experts[0], tok, enc_tf, batch_size=bsz),
    }
    print("\nTeacher-forced token predictions (one LoRA expert, gold answers: eps_t of a round)")
    ttimes, tres = _perf.interleaved(tfns, repeats=repeats, device=device)
    same = all(np.array_equal(x, y) for x, y in zip(*tres.values()))
    trows = [{
        "case": name,
        "seconds": f"{_perf.median(ttimes, name):.3f}",
        "speedup vs plain": f"{_perf.ratio(ttimes, 'token predictions, plain', name):.2f}x",
        "same predictions": same,
    } for name in tfns]
    _perf.print_table(trows, list(trows[0]))

    payload["ensemble"] = {"times": mtimes, "rows": mrows}
    payload["token_predictions"] = {"times": ttimes, "rows": trows}
    _perf.write_json(_perf.result_name("scoring", args, device), payload, args)
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _perf.common_arguments(parser)
    parser.add_argument("--n-questions", type=int, default=None)
    parser.add_argument("--n-mixture-questions", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8, help="questions per batch")
    parser.add_argument("--experts", type=int, default=5)
    parser.add_argument("--skip-ensemble", action="store_true",
                        help="only the single-model P3 table")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
