"""P4: peak resident memory while decoding, one model against a 5-round ensemble.

Each configuration runs in a fresh Python process, which builds its experts, resets the
kernel's resident-memory high-water mark (``/proc/self/clear_refs``), decodes a batch with
:func:`skw2s.hf.decoding.mixture_generate` (greedy, EOS disabled) and reads the peak back
(``VmHWM``). Configurations:

- **one model**: the base model alone;
- **LoRA ensemble**: ``T`` LoRA rounds on one shared base, as a fitted
  ``TokenAdaBoostGenerator(mode="lora")`` holds them (quick mode: a real fitted estimator on a
  tiny model, decoding through its ``generate``; full mode: ``T`` adapters with random
  non-zero ``B`` on the real model, since training is not what is measured);
- **full ensemble**: ``T`` full copies of the model (the cost that sharing avoids).

The table gives each peak and its ratio to the one-model peak (target for the LoRA ensemble:
<= 1.3), and the same ratio for the memory above the bare interpreter with torch imported.

Usage::

    python benchmarks/bench_memory.py --quick
    python benchmarks/bench_memory.py                 # smollm2-135m, batch 8, 64 tokens
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _perf  # noqa: E402

CONFIGS = ("one", "lora", "full")


def _status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0  # MiB
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _fitted_lora_ensemble(spec, n_experts, device):
    """A real TokenAdaBoostGenerator(mode="lora") fitted on a few rows (quick mode)."""
    import pandas as pd

    from skw2s import LLMGenerator, TokenAdaBoostGenerator

    X = pd.DataFrame({"prompt": _perf.QUICK_PROMPTS, "choices": _perf.QUICK_CHOICES})
    y = [0] * len(X)
    weak = LLMGenerator(spec, mode="lora", lr=2e-2, n_epochs=3, lora_r=4, batch_size=8,
                        device=str(device), random_state=0)
    return TokenAdaBoostGenerator(weak, n_estimators=n_experts, random_state=0).fit(X, y)


def child(args):
    """Build one configuration, decode, print its memory figures as JSON."""
    import gc

    import numpy as np
    import torch

    from skw2s.hf.decoding import mixture_generate

    device, _ = _perf.setup(args.threads, args.device)
    imported = _status("VmRSS")
    prompts, _, _ = _perf.arc_questions(args.batch_size, args.data_dir)
    kw = dict(max_new_tokens=args.max_new_tokens, batch_size=len(prompts), eos_token_id=[])
    T = args.experts
    decode, n_experts = None, T
    if args.config == "lora" and args.quick:
        est = _fitted_lora_ensemble(args.spec, T, device)
        n_experts = len(est.estimators_)

        def decode():
            return est.generate(prompts, max_new_tokens=args.max_new_tokens)
    else:
        model, tok = _perf.load(args.spec, device)
        if args.config == "one":
            experts, n_experts = [model], 1
        elif args.config == "lora":
            _, experts = _perf.lora_experts(model, T)
        else:
            experts = _perf.full_copies(model, T)
        del model
        alphas = np.linspace(1.0, 2.0, len(experts))

        def decode():
            return mixture_generate(experts, alphas, tok, prompts, **kw)
    gc.collect()
    loaded = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    out = decode()
    peak = _status("VmHWM")
    print(json.dumps({
        "config": args.config, "experts": n_experts, "rss_after_import_mib": imported,
        "rss_loaded_mib": loaded, "peak_decoding_mib": peak,
        "tokens": int(sum(len(r) if isinstance(r, list) else 1 for r in out)),
        "torch_threads": torch.get_num_threads(),
    }))


def run(args):
    device, threads = _perf.setup(args.threads, args.device)
    info = _perf.machine_info(device, threads)
    spec = _perf.tiny_model() if args.quick else args.model
    n_new = args.max_new_tokens or (16 if args.quick else 64)
    _perf.print_header("P4 memory while decoding", info)
    print(f"model {'tiny random (quick)' if args.quick else args.model}; batch {args.batch_size}, "
          f"{n_new} new tokens; T={args.experts}; one fresh process per configuration")
    results = {}
    for config in args.configs:
        cmd = [sys.executable, __file__, "--child", config, "--spec", spec,
               "--device", args.device, "--threads", str(args.threads),
               "--batch-size", str(args.batch_size), "--max-new-tokens", str(n_new),
               "--experts", str(args.experts)]
        if args.quick:
            cmd.append("--quick")
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{config} failed:\n{proc.stderr[-3000:]}")
        results[config] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[config]
        print(f"  {config}: peak {r['peak_decoding_mib']:.0f} MiB (loaded "
              f"{r['rss_loaded_mib']:.0f}, after import {r['rss_after_import_mib']:.0f})")
    one = results.get("one")
    rows = []
    names = {"one": "one model", "lora": f"LoRA ensemble, {args.experts} rounds on one base",
             "full": f"{args.experts} full models"}
    for config, r in results.items():
        row = {"case": names[config], "experts": r["experts"],
               "peak MiB": f"{r['peak_decoding_mib']:.0f}",
               "loaded MiB": f"{r['rss_loaded_mib']:.0f}"}
        if one:
            total = r["peak_decoding_mib"] / one["peak_decoding_mib"]
            net = (r["peak_decoding_mib"] - r["rss_after_import_mib"]) / (
                one["peak_decoding_mib"] - one["rss_after_import_mib"])
            row["peak / one model"] = f"{total:.2f}"
            row["net of interpreter"] = f"{net:.2f}"
            row["target"] = (_perf.verdict(total, 1.3, quick=args.quick)
                             if config == "lora" else "")
        rows.append(row)
    print()
    _perf.print_table(rows, list(rows[0]))
    payload = {"benchmark": "memory", "machine": info,
               "settings": {"quick": args.quick, "model": "tiny" if args.quick else args.model,
                            "batch_size": args.batch_size, "max_new_tokens": n_new,
                            "experts": args.experts},
               "results": results, "rows": rows}
    _perf.write_json(_perf.result_name("memory", args, device), payload, args)
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _perf.common_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--experts", type=int, default=5)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--child", choices=CONFIGS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.config = args.child
        child(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
