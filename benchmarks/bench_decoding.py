"""P1 and P2: the cost of mixture decoding against the experts' own ``generate``.

Every generated token of a mixture needs a forward of every expert; these tables show how
close :func:`skw2s.hf.decoding.mixture_generate` gets to that floor. One batch of ``--batch-size``
ARC-Easy prompts, ``--max-new-tokens`` greedy tokens with EOS disabled (every row produces the
same number of tokens on every path), ``T = --experts`` experts with positive weights:

- **P1, full experts** (``T`` separate models, slightly perturbed copies of one checkpoint):
  the cached mixture against the *sum* of the ``T`` experts' own Hugging Face ``generate``
  times for the same prompts and token count (target <= 1.10), and against the plain reference
  ``use_cache=False``, which recomputes every prefix at every step (target >= 5x faster; run
  once, with ``--reference-experts`` experts, since it is slow: its cost and the cached cost
  both grow linearly with ``T``, so the ratio does not depend on ``T``). Also: our decoder with
  one expert against that expert's ``generate`` (the loop's own overhead).
- **P2, LoRA experts on one base** (``T`` adapters with random non-zero ``B``, as in a fitted
  ``TokenAdaBoostGenerator(mode="lora")``): the mixture with all adapters in one mixed-adapter
  forward per step (one KV cache for the combined batch) against one adapter's ``generate``
  (target <= 2.0 on CPU, <= 1.3 on a GPU), and the same mixture with the adapters run one
  after the other.

Correctness is checked on the way: our decoder with one expert must produce exactly the tokens
of that expert's greedy ``generate``, and batched adapters the tokens of adapters one by one.

- **Speculative mixture decoding** (``--parts speculative``, stretch): ``speculative_k=k``
  (the expert of largest weight drafts ``k`` tokens, the mixture verifies them in one forward
  per expert or adapter group) against the cached mixture of P1/P2 (``speculative_k=None``),
  timed alternately in the same run, on experts that mostly agree (P1's perturbed copies, P2's
  small adapters) and on experts that often disagree (every weight matrix perturbed by
  ``--disagree-noise`` of its standard deviation), at batch ``--batch-size`` and batch 1. It
  reports the speedup (cached time / speculative time), the acceptance rate of drafted tokens
  and tokens per verification step, and checks that both give the same tokens. Its raw numbers
  go to ``speculative_<mode>_<device>.json``; ``--max-new-tokens`` defaults to 32 here.

Usage::

    python benchmarks/bench_decoding.py --quick       # tiny random model, ~1 minute
    python benchmarks/bench_decoding.py               # smollm2-135m, batch 8, 64 tokens
    python benchmarks/bench_decoding.py --parts speculative   # ~6 min on 1 CPU thread
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _perf  # noqa: E402


def _hf_generate(model, ids, mask, max_new_tokens, pad_id):
    """Greedy ``generate`` with EOS disabled; returns the new tokens of each row.

    ``generate`` fills an EOS passed as None from the model's own generation config, so the
    model's config itself is swapped for one without EOS during the call.
    """
    import copy

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    saved = base.generation_config
    config = copy.deepcopy(saved)
    config.eos_token_id = None
    config.pad_token_id = pad_id
    config.do_sample = False
    config.max_new_tokens = max_new_tokens
    base.generation_config = config
    try:
        out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device))
    finally:
        base.generation_config = saved
    out = out[:, ids.shape[1]:].cpu().tolist()
    if any(len(r) != max_new_tokens for r in out):
        raise RuntimeError("generate stopped early although EOS was disabled")
    return out


def _batch(tok, prompts):
    from skw2s.hf.decoding import encode_prompts
    from skw2s.hf.decoding._batching import _pad_rows

    rows = encode_prompts(tok, prompts)
    return _pad_rows(rows, tok.pad_token_id, "left"), _pad_rows([[1] * len(r) for r in rows], 0,
                                                                  "left")


def run(args):
    import time

    from skw2s.hf.decoding import mixture_generate

    device, threads = _perf.setup(args.threads, args.device)
    info = _perf.machine_info(device, threads)
    quick = args.quick
    T = args.experts
    n_new = args.max_new_tokens or (24 if quick else 64)
    repeats = args.repeats or (3 if quick else 2)
    spec = _perf.tiny_model() if quick else args.model
    prompts, _, source = _perf.arc_questions(args.batch_size, args.data_dir)
    alphas = np.linspace(1.0, 2.0, T)
    if "p1" in args.parts or "p2" in args.parts:
        _perf.print_header("P1/P2 mixture decoding", info)
        print(f"model {'tiny random (quick)' if quick else args.model}; batch of "
              f"{len(prompts)} {source} prompts; {n_new} new tokens (EOS disabled); T={T}; "
              f"{repeats} alternating repeats")
    payload = {
        "benchmark": "decoding", "machine": info,
        "settings": {"quick": quick, "model": "tiny" if quick else args.model, "source": source,
                     "batch_size": len(prompts), "max_new_tokens": n_new, "experts": T,
                     "repeats": repeats, "reference_experts": args.reference_experts},
    }
    kw = dict(max_new_tokens=n_new, batch_size=len(prompts), eos_token_id=[])

    # -- P1: T full experts --------------------------------------------------------------
    if "p1" in args.parts:
        model, tok = _perf.load(spec, device)
        ids, mask = _batch(tok, prompts)
        experts = _perf.full_copies(model, T)
        def p1_fns(n):
            k = dict(kw, max_new_tokens=n)
            fns = {f"generate e{t + 1}": (lambda m=m: _hf_generate(m, ids, mask, n,
                                                                    tok.pad_token_id))
                   for t, m in enumerate(experts)}
            fns["ours, 1 expert"] = lambda: mixture_generate([experts[0]], [1.0], tok, prompts, **k)
            fns["mixture, cached"] = lambda: mixture_generate(experts, alphas, tok, prompts, **k)
            return fns

        print("\nP1: full experts")
        times, res = _perf.interleaved(p1_fns(n_new), repeats=repeats, device=device,
                                       warmup=p1_fns(2))
        same = res["ours, 1 expert"] == res["generate e1"]
        gens = [f"generate e{t + 1}" for t in range(T)]
        r1 = _perf.ratio(times, "mixture, cached", gens)
        r_own = _perf.ratio(times, "ours, 1 expert", "generate e1")
        rows = [
            {"case": f"sum of {T} experts' generate", "seconds":
             f"{float(np.median(np.sum([times[g] for g in gens], axis=0))):.2f}",
             "ratio": "1.00 (baseline)", "target": ""},
            {"case": f"mixture of {T}, cached",
             "seconds": f"{_perf.median(times, 'mixture, cached'):.2f}",
             "ratio": f"{r1:.3f}", "target": _perf.verdict(r1, 1.10, quick=args.quick)},
            {"case": "ours with 1 expert / its generate",
             "seconds": f"{_perf.median(times, 'ours, 1 expert'):.2f}", "ratio": f"{r_own:.3f}",
             "target": f"same tokens as generate: {same}"},
        ]
        # plain reference: recomputes every prefix, run once with few experts (slow)
        k = T if quick else args.reference_experts
        ref_models, ref_alphas = experts[:k], alphas[:k]
        start = time.perf_counter()
        slow = mixture_generate(ref_models, ref_alphas, tok, prompts, use_cache=False, **kw)
        t_slow = time.perf_counter() - start
        start = time.perf_counter()
        fast = mixture_generate(ref_models, ref_alphas, tok, prompts, **kw)
        t_fast = time.perf_counter() - start
        speed = t_slow / t_fast
        rows.append({"case": f"plain (no cache) / cached, {k} expert(s), 1 run",
                     "seconds": f"{t_slow:.2f} / {t_fast:.2f}", "ratio": f"{speed:.1f}x faster",
                     "target": _perf.verdict(speed, 5.0, at_least=True, quick=args.quick)
                     + f"; same tokens: {slow == fast}"})
        _perf.print_table(rows, list(rows[0]))
        payload["p1"] = {"times": times, "rows": rows, "reference": {
            "experts": k, "plain_seconds": t_slow, "cached_seconds": t_fast,
            "same_tokens": slow == fast}, "own_matches_generate": same}
        del experts, model

    # -- P2: T LoRA adapters on one base --------------------------------------------------
    if "p2" in args.parts:
        base, tok = _perf.load(spec, device)
        ids, mask = _batch(tok, prompts)
        peft_model, experts = _perf.lora_experts(base, T)

        def p2_fns(n):
            k = dict(kw, max_new_tokens=n)

            def one_adapter():
                peft_model.set_adapter("round1")
                return _hf_generate(peft_model, ids, mask, n, tok.pad_token_id)

            return {
                "generate, 1 adapter": one_adapter,
                "mixture, adapters batched": lambda: mixture_generate(
                    experts, alphas, tok, prompts, **k),
                "mixture, adapters one by one": lambda: mixture_generate(
                    experts, alphas, tok, prompts, batch_adapters=False, **k),
            }

        fns = p2_fns(n_new)
        print("\nP2: LoRA experts on one base model")
        times, res = _perf.interleaved(fns, repeats=repeats, device=device, warmup=p2_fns(2))
        same = res["mixture, adapters batched"] == res["mixture, adapters one by one"]
        target = 1.3 if device.type == "cuda" else 2.0
        rows = []
        for name in fns:
            r = _perf.ratio(times, name, "generate, 1 adapter")
            rows.append({
                "case": name, "seconds": f"{_perf.median(times, name):.2f}", "ratio": f"{r:.3f}",
                "target": (_perf.verdict(r, target, quick=args.quick)
                           if name == "mixture, adapters batched" else ""),
            })
        rows[-1]["target"] = f"same tokens as batched: {same}"
        _perf.print_table(rows, list(rows[0]))
        payload["p2"] = {"times": times, "rows": rows, "same_tokens": same}
    if "p1" in args.parts or "p2" in args.parts:
        _perf.write_json(_perf.result_name("decoding", args, device), payload, args)
    if "speculative" in args.parts:
        payload["speculative"] = run_speculative(args, device, info, spec, prompts, source)
    return payload


def _disagreeing_copies(model, n_experts, noise, seed=0):
    """``n_experts`` copies of ``model`` (the first is ``model``) whose every weight matrix
    but the embeddings gets Gaussian noise of ``noise`` times its standard deviation: experts
    that often disagree on the greedy token."""
    import copy

    import torch

    experts = [model]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n_experts - 1):
        other = copy.deepcopy(model)
        with torch.no_grad():
            for name, p in other.named_parameters():
                if p.dim() == 2 and "embed" not in name:
                    p.add_(noise * p.std() * torch.randn(p.shape, generator=gen).to(p.device,
                                                                                     p.dtype))
        experts.append(other.eval())
    return experts


def run_speculative(args, device, info, spec, prompts, source):
    """Speculative mixture decoding against the cached mixture (P1/P2 path), same run."""
    from skw2s.hf.decoding import mixture_generate
    from skw2s.hf.decoding.speculative import _record_speculative_stats

    quick, T, k = args.quick, args.experts, args.speculative_k
    n_new = args.max_new_tokens or (24 if quick else 32)
    repeats = args.repeats or (3 if quick else 2)
    alphas = np.linspace(1.0, 2.0, T)
    _perf.print_header("Speculative mixture decoding", info)
    print(f"model {'tiny random (quick)' if quick else args.model}; {source} prompts; {n_new} "
          f"new tokens (EOS disabled); T={T}; k={k}, drafter = expert of largest weight; "
          f"{repeats} alternating repeats")
    payload = {
        "benchmark": "speculative", "machine": info,
        "settings": {"quick": quick, "model": "tiny" if quick else args.model, "source": source,
                     "batch_size": len(prompts), "max_new_tokens": n_new, "experts": T,
                     "speculative_k": k, "repeats": repeats,
                     "disagree_noise": args.disagree_noise},
        "cases": [],
    }
    rows = []

    def case(name, experts, batch):
        batch_prompts = prompts[:batch]
        kw = dict(batch_size=batch, eos_token_id=[])
        stats = {}

        def fns(n):
            def speculative():
                with _record_speculative_stats() as s:
                    out = mixture_generate(experts, alphas, tok, batch_prompts,
                                           max_new_tokens=n, speculative_k=k, **kw)
                stats.update(s.as_dict())
                return out

            return {
                "cached mixture": lambda: mixture_generate(
                    experts, alphas, tok, batch_prompts, max_new_tokens=n, **kw),
                "speculative": speculative,
            }

        print(f"\n{name}, batch {batch}")
        times, res = _perf.interleaved(fns(n_new), repeats=repeats, device=device,
                                       warmup=fns(2))
        same = res["speculative"] == res["cached mixture"]
        speedup = _perf.ratio(times, "cached mixture", "speculative")
        row = {
            "experts": name, "batch": batch,
            "cached s": f"{_perf.median(times, 'cached mixture'):.2f}",
            "speculative s": f"{_perf.median(times, 'speculative'):.2f}",
            "speedup": f"{speedup:.2f}x",
            "acceptance": f"{stats['acceptance_rate']:.2f}",
            "tokens/step": f"{stats['tokens_per_row_step']:.2f}",
            "same tokens": same,
        }
        rows.append(row)
        payload["cases"].append({"name": name, "batch": batch, "times": times,
                                 "speedup": speedup, "stats": stats, "same_tokens": same})
        print(f"  speedup {speedup:.2f}x, acceptance {stats['acceptance_rate']:.2f}, "
              f"same tokens {same}")

    batches = sorted({len(prompts), 1}, reverse=True)
    model, tok = _perf.load(spec, device)
    experts = _perf.full_copies(model, T)
    for b in batches:
        case(f"{T} full, near copies (P1)", experts, b)
    del experts
    experts = _disagreeing_copies(model, T, args.disagree_noise)
    case(f"{T} full, disagreeing (noise {args.disagree_noise:g})", experts, len(prompts))
    del experts
    _, experts = _perf.lora_experts(model, T)
    for b in batches:
        case(f"{T} LoRA adapters, stacked (P2)", experts, b)
    print()
    _perf.print_table(rows, list(rows[0]))
    payload["rows"] = rows
    _perf.write_json(_perf.result_name("speculative", args, device), payload, args)
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _perf.common_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts in the batch")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--experts", type=int, default=5)
    parser.add_argument("--reference-experts", type=int, default=1,
                        help="experts in the slow no-cache reference run (non-quick mode)")
    parser.add_argument("--parts", nargs="+", default=["p1", "p2"],
                        choices=["p1", "p2", "speculative"])
    parser.add_argument("--speculative-k", type=int, default=4,
                        help="tokens drafted per verification step (--parts speculative)")
    parser.add_argument("--disagree-noise", type=float, default=0.3,
                        help="relative weight noise of the disagreeing experts (speculative)")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
