"""The GPU check: one command that proves skw2s on a GPU and measures it there.

Run it through ``scripts/gpu_check.sh`` (which installs missing packages from a folder of
wheels first). It needs no network: the models are random weights at the real shapes of
SmolLM2-135M and Qwen2.5-0.5B, built on the device from the configs in ``benchmarks/gpu/``,
with a byte-level tokenizer made offline (:mod:`skw2s.hf.testing`). Speed does not depend on the
weights' values; correctness is checked against the CPU in the same process.

Four parts, each timed and guarded (a failure is recorded with its traceback, and the next
part runs):

1. ``tests``: every test marked ``cuda`` (skipped without a CUDA device), through pytest.
2. ``correctness``: on ``--device`` in float32, each against the same run on the CPU: a tiny
   :class:`~skw2s.WeakToStrongPipeline` (LoRA weak learners boosted, a LoRA student), a
   :class:`~skw2s.TokenAdaBoostGenerator` fit with mixture ``generate`` and choice
   probabilities, speculative decoding, stacked-LoRA experts and choice scoring. Greedy tokens
   and choices must be the same; scores and probabilities within the stated tolerances.
3. ``speed``: bfloat16 on a GPU (float32 on a CPU), every figure a ratio against a baseline
   timed in the same run: P1 (cached T=5 mixture against the sum of the experts' own
   ``generate``), P2 (T=5 LoRA adapters on one base against one adapter), P3 (choice scoring,
   prompt once, against the per-choice loop), speculative decoding against the cached mixture,
   and a LoRA SFT step's useful FLOP/s as a fraction of a matrix product's rate measured in the
   same process.
4. ``launch``: ``torchrun --nproc_per_node=1`` and ``accelerate launch --num_processes 1`` of
   a LoRA fit (``benchmarks/gpu/launch_fit.py``), each compared with the same fit in process.

It writes ``gpu_check.json`` (every figure, the GPU's name, the versions and the command) to
``--out`` after every part, so a run stopped half-way keeps what it measured, and prints a
short table. The exit status is 1 when a part failed or a correctness check disagreed; a speed
target that is missed is a measurement, not a failure.

``--device cpu --quick`` runs the same code on tiny models in a minute or two: the default test
suite runs it, so the check cannot rot while no GPU is around.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = HERE / "gpu"
sys.path.insert(0, str(HERE))

import _perf  # noqa: E402

PARTS = ("tests", "correctness", "speed", "launch")
PROB_TOL = 2e-3
"""Largest allowed ``|p_device - p_cpu|`` of a fitted estimator's probabilities (float32):
training on two devices sums in another order, and a few optimiser steps carry that on."""
NLL_TOL = 1e-3
"""Largest allowed relative difference of option NLLs computed on the device and on the CPU."""

logger = logging.getLogger("gpu_check")


# -------------------------------------------------------------------------------------------
# small helpers
# -------------------------------------------------------------------------------------------
def _log(msg):
    print(msg, flush=True)


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _versions():
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "peft", "accelerate", "datasets", "scikit-learn",
                 "numpy", "pandas", "skops", "tokenizers", "safetensors"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    import torch

    out["cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    return out


def source_digest():
    """SHA-256 of skw2s's source files (paths and contents, in order): names the code a run
    measured where the checkout's git metadata is missing or stale (a copied working tree)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "skw2s").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _gpu_info(device):
    import torch

    if device.type != "cuda":
        return None
    p = torch.cuda.get_device_properties(device)
    return {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
            "multiprocessors": p.multi_processor_count,
            "capability": f"{p.major}.{p.minor}"}


def shape_config(name, vocab_size=None):
    """A transformers config from ``benchmarks/gpu/{name}.json`` (``model_type`` + sizes)."""
    from transformers import AutoConfig

    fields = json.loads((CONFIGS / f"{name}.json").read_text())
    fields.pop("_comment", None)
    model_type = fields.pop("model_type")
    if vocab_size is not None:
        fields["vocab_size"] = vocab_size
    return AutoConfig.for_model(model_type, **fields)


def random_model(name, device, dtype, *, seed=0, tokenizer=None):
    """A random-weight causal LM of the shape ``name``, built directly on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM

    config = shape_config(name)
    if tokenizer is not None:
        config.pad_token_id = tokenizer.pad_token_id
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if model.generation_config is not None:
        model.generation_config.pad_token_id = config.pad_token_id
    return model.eval()


def matmul_rate(device, dtype, *, size, repeats=10):
    """FLOP/s of a ``size`` square matrix product in ``dtype`` on ``device`` (mean of
    ``repeats`` timed products after 3 warm-ups)."""
    import torch

    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=g)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    seconds = (time.perf_counter() - start) / repeats
    return 2 * size**3 / seconds


class Checks:
    """Named checks of one part, each guarded: a failing check records its traceback and the
    next one runs."""

    def __init__(self):
        self.rows = []

    def run(self, name, fn):
        start = time.perf_counter()
        try:
            row = {"name": name, **fn()}
            row.setdefault("ok", True)
        except Exception:  # noqa: BLE001 - recorded, and the next check runs
            row = {"name": name, "ok": False, "error": traceback.format_exc(limit=12)}
            _log(row["error"])
        row["seconds"] = round(time.perf_counter() - start, 2)
        self.rows.append(row)
        status = "ok" if row["ok"] else "FAILED"
        detail = row.get("detail", "")
        _log(f"  [{status}] {name} ({row['seconds']} s) {detail}")
        return row

    @property
    def ok(self):
        return all(r["ok"] for r in self.rows)


# -------------------------------------------------------------------------------------------
# part 1: the tests marked cuda
# -------------------------------------------------------------------------------------------
def part_tests(ctx):
    out = Path(ctx["out"]) / "pytest-cuda.xml"
    # only the modules that hold such tests: the others may import test-only packages (a
    # docs builder, say) that a GPU node lacks
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                   if "@pytest.mark.cuda" in p.read_text())
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
           f"--junitxml={out}", *files]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=ctx["timeout"])
    tail = (proc.stdout + proc.stderr)[-4000:]
    _log(tail)
    counts = _junit_counts(out) if out.exists() else {}
    ok = proc.returncode in (0, 5) and counts.get("failures", 0) == 0 \
        and counts.get("errors", 0) == 0
    if ctx["device"].type == "cuda":
        ok = ok and counts.get("tests", 0) > counts.get("skipped", 0)
    return {"ok": ok, "returncode": proc.returncode, "counts": counts, "output_tail": tail,
            "command": " ".join(cmd[1:])}


def _junit_counts(path):
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


# -------------------------------------------------------------------------------------------
# part 2: correctness on the device against the CPU, float32
# -------------------------------------------------------------------------------------------
_WORDS = ["oxygen", "carbon", "water", "iron", "helium", "sun", "moon", "earth"]
_MC_ROWS = [
    ("Question: sky colour?\nAnswer:", ["blue", "green"], 0),
    ("Question: grass colour?\nAnswer:", ["blue", "green"], 1),
    ("Question: boiling water is?\nAnswer:", ["hot", "cold"], 0),
    ("Question: ice is?\nAnswer:", ["hot", "cold"], 1),
    ("Question: plants absorb which gas?\nAnswer:", ["carbon dioxide", "helium"], 0),
    ("Question: the sun is a?\nAnswer:", ["moon", "star"], 1),
    ("Question: water freezes when it gets?\nAnswer:", ["colder", "hotter"], 0),
    ("Question: heavier objects fall?\nAnswer:", ["faster", "at the same rate"], 1),
]


def binary_data(n, seed=0):
    """Short yes/no texts with a label the text gives away (learnable by a tiny model)."""
    rng = np.random.RandomState(seed)
    texts, labels = [], []
    for i in range(n):
        a, b = rng.choice(_WORDS, 2, replace=False)
        label = int(rng.rand() < 0.5)
        texts.append(f"Q: {a} {b} A: {'yes' if label else 'no'} {i % 5}")
        labels.append(label)
    return texts, np.array(labels)


def _mc_frame():
    import pandas as pd

    X = pd.DataFrame({"prompt": [r[0] for r in _MC_ROWS], "choices": [r[1] for r in _MC_ROWS]})
    return X, np.array([r[2] for r in _MC_ROWS])


def _max_gap(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def _compare_probs(name, dev, cpu, tol=PROB_TOL):
    """Probabilities within ``tol``, and the same argmax on every row whose two largest CPU
    probabilities are more than ``2 * tol`` apart (closer ones may flip with float noise)."""
    dev, cpu = np.asarray(dev, dtype=np.float64), np.asarray(cpu, dtype=np.float64)
    gap = _max_gap(dev, cpu)
    top2 = np.sort(cpu, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * tol
    differ = np.argmax(dev, 1) != np.argmax(cpu, 1)
    flips, near_ties = int(np.sum(differ & clear)), int(np.sum(~clear))
    return {"ok": gap <= tol and flips == 0, "max_abs_diff": gap, "tolerance": tol,
            "argmax_flips": int(np.sum(differ)), "near_ties": near_ties,
            "detail": f"{name}: max |dp| {gap:.1e} (tol {tol:g}), argmax differs on "
                      f"{int(np.sum(differ))} of {len(cpu)} rows ({near_ties} near ties)"}


def part_correctness(ctx):
    import torch

    from skw2s import (LLMAdaBoostClassifier, LLMClassifier, LLMGenerator,
                       TokenAdaBoostGenerator, WeakToStrongPipeline)
    from skw2s.hf.decoding import AdapterExpert, choice_nll, choice_nll_mixture, mixture_generate
    from skw2s.hf.models import load_causal_lm
    from skw2s.hf.testing import tiny_causal_lm

    device = ctx["device"]
    dev = str(device)
    work = Path(tempfile.mkdtemp(prefix="skw2s-gpu-check-"))
    weak_lm = tiny_causal_lm(work / "weak", seed=0, n_layers=2, hidden_size=32)
    strong_lm = tiny_causal_lm(work / "strong", seed=1, n_layers=3, hidden_size=48)
    checks = Checks()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    # 1. a tiny pipeline: LoRA weak learners boosted, a LoRA student
    X, y = binary_data(48)
    X_test, y_test = binary_data(24, seed=1)

    def pipeline(on):
        weak = LLMAdaBoostClassifier(
            LLMClassifier(weak_lm, mode="lora", lr=1e-2, n_epochs=2, batch_size=8, lora_r=4,
                          device=on, dtype="float32"),
            n_estimators=2, random_state=0,
        )
        strong = LLMClassifier(strong_lm, mode="lora", lr=1e-2, n_epochs=2, batch_size=8,
                               lora_r=4, device=on, dtype="float32")
        pipe = WeakToStrongPipeline(weak, strong, random_state=0)
        pipe.fit(X, y, X_test=X_test, y_test=y_test)
        return pipe

    def check_pipeline():
        a, b = pipeline(dev), pipeline("cpu")
        row = _compare_probs("student", a.student_.predict_proba(X_test),
                             b.student_.predict_proba(X_test))
        ra, rb = a.report_.set_index("model"), b.report_.set_index("model")
        acc_gap = _max_gap(ra.accuracy.to_numpy(), rb.accuracy.to_numpy())
        alphas_gap = _max_gap(a.weak_.estimator_weights_, b.weak_.estimator_weights_)
        pseudo_same = bool(np.array_equal(a.pseudo_labels_, b.pseudo_labels_))
        row.update(ok=row["ok"] and alphas_gap < 1e-3,
                   report_accuracy_gap=acc_gap, alphas_gap=alphas_gap,
                   same_pseudo_labels=pseudo_same, model_device=str(a.student_.model_.device))
        row["detail"] += (f"; report accuracy gap {acc_gap:g}; alphas gap {alphas_gap:.1e}; "
                          f"same pseudo-labels {pseudo_same}")
        return row

    checks.run("pipeline (LoRA AdaBoost weak side, LoRA student)", check_pipeline)

    # 2. TokenAdaBoostGenerator: fit, mixture generate, choice probabilities
    Xmc, ymc = _mc_frame()

    def boost(on):
        learner = LLMGenerator(weak_lm, mode="lora", lr=5e-2, n_epochs=10, batch_size=8,
                               lora_r=4, device=on, dtype="float32", max_new_tokens=6)
        return TokenAdaBoostGenerator(learner, n_estimators=3, random_state=0).fit(Xmc, ymc)

    fitted = {}

    def check_generator():
        fitted["dev"], fitted["cpu"] = boost(dev), boost("cpu")
        a, b = fitted["dev"], fitted["cpu"]
        ta = a.generate(Xmc.prompt.tolist(), return_tokens=True)
        tb = b.generate(Xmc.prompt.tolist(), return_tokens=True)
        row = _compare_probs("choice probabilities", a.predict_proba(Xmc), b.predict_proba(Xmc))
        same_tokens = ta == tb
        same_pred = bool(np.array_equal(a.predict(Xmc), b.predict(Xmc)))
        row.update(ok=row["ok"] and same_tokens and same_pred
                   and len(a.estimators_) == len(b.estimators_),
                   same_tokens=same_tokens, same_choices=same_pred,
                   rounds=[len(a.estimators_), len(b.estimators_)],
                   alphas_gap=_max_gap(a.estimator_weights_, b.estimator_weights_)
                   if len(a.estimators_) == len(b.estimators_) else None)
        row["detail"] += (f"; same greedy tokens {same_tokens}; same choices {same_pred}; "
                          f"rounds {row['rounds']}")
        return row

    checks.run("TokenAdaBoostGenerator (LoRA) fit + mixture generate", check_generator)

    # 3. speculative decoding on the fitted experts
    def check_speculative():
        prompts = Xmc.prompt.tolist()
        out = {}
        for key in ("dev", "cpu"):
            experts, alphas, combine = fitted[key]._mixture_parts()
            tok = fitted[key].tokenizer_
            kw = dict(max_new_tokens=8, eos_token_id=[], combine=combine)
            out[key] = mixture_generate(experts, alphas, tok, prompts, speculative_k=3, **kw)
            out[key + "_plain"] = mixture_generate(experts, alphas, tok, prompts, **kw)
        same = out["dev"] == out["cpu"] == out["dev_plain"] == out["cpu_plain"]
        return {"ok": same, "same_tokens": same,
                "detail": f"speculative == plain on both devices, and device == CPU: {same}"}

    checks.run("speculative decoding (k=3) on the boosted experts", check_speculative)

    # 4. stacked LoRA experts and choice scoring
    prompts, choices = Xmc.prompt.tolist(), Xmc.choices.tolist()

    def lora_pair(on):
        from peft import LoraConfig, get_peft_model

        base, tok = load_causal_lm(weak_lm, device=on, dtype="float32")
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = get_peft_model(base, config, adapter_name="a").eval()
            model.add_adapter("b", config)
        return [AdapterExpert(model, "a"), AdapterExpert(model, "b")], tok

    def nll_row(name, dev_nll, cpu_nll):
        a, b = np.concatenate(dev_nll), np.concatenate(cpu_nll)
        rel = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))
        same = [int(np.argmin(r)) for r in dev_nll] == [int(np.argmin(r)) for r in cpu_nll]
        return {"ok": rel <= NLL_TOL and same, "max_rel_diff": rel, "tolerance": NLL_TOL,
                "same_choices": same,
                "detail": f"{name}: max rel |dNLL| {rel:.1e} (tol {NLL_TOL:g}), "
                          f"same choices {same}"}

    def check_stacked():
        (ea, tok), (eb, _) = lora_pair(dev), lora_pair("cpu")
        got = choice_nll_mixture(ea, [1, 2], tok, prompts, choices)
        ref_dev = choice_nll_mixture(ea, [1, 2], tok, prompts, choices, batch_adapters=False,
                                     share_prompts=False)
        ref_cpu = choice_nll_mixture(eb, [1, 2], tok, prompts, choices)
        row = nll_row("stacked vs CPU", got, ref_cpu)
        inner = nll_row("stacked vs one by one", got, ref_dev)
        tokens = mixture_generate(ea, [1, 2], tok, prompts, max_new_tokens=6, eos_token_id=[])
        tokens_cpu = mixture_generate(eb, [1, 2], tok, prompts, max_new_tokens=6,
                                      eos_token_id=[])
        same = tokens == tokens_cpu
        row.update(ok=row["ok"] and inner["ok"] and same, same_tokens=same,
                   vs_one_by_one=inner["max_rel_diff"])
        row["detail"] += f"; vs adapters one by one {inner['max_rel_diff']:.1e}; same tokens {same}"
        return row

    checks.run("stacked-LoRA experts (choice NLLs, generate)", check_stacked)

    def check_scoring():
        model, tok = load_causal_lm(strong_lm, device=dev, dtype="float32")
        cpu_model, _ = load_causal_lm(strong_lm, device="cpu", dtype="float32")
        fast = choice_nll(model, tok, prompts, choices)
        plain = choice_nll(model, tok, prompts, choices, share_prompts=False)
        ref = choice_nll(cpu_model, tok, prompts, choices)
        row = nll_row("prompt once on device vs CPU", fast, ref)
        inner = nll_row("prompt once vs plain", fast, plain)
        row.update(ok=row["ok"] and inner["ok"], vs_plain=inner["max_rel_diff"])
        row["detail"] += f"; vs the plain path {inner['max_rel_diff']:.1e}"
        return row

    checks.run("choice scoring (prompt once)", check_scoring)
    return {"ok": checks.ok, "checks": checks.rows}


# -------------------------------------------------------------------------------------------
# part 3: speed, bfloat16 on a GPU
# -------------------------------------------------------------------------------------------
def part_speed(ctx):
    import torch

    import bench_decoding
    from skw2s.hf.decoding import choice_nll, mixture_generate
    from skw2s.hf.decoding.speculative import _record_speculative_stats
    from skw2s.hf.testing import tiny_tokenizer

    device, quick = ctx["device"], ctx["quick"]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shapes = ["tiny"] if quick else ["smollm2-135m", "qwen2.5-0.5b"]
    decode_shape = shapes[0]
    repeats = 2
    n_new = 8 if quick else 64
    T = 5
    tok = tiny_tokenizer()
    prompts = (_perf.QUICK_PROMPTS * 4)[:8]
    mc_prompts = (_perf.QUICK_PROMPTS * 4)[: 8 if quick else 32]
    mc_choices = (_perf.QUICK_CHOICES * 4)[: len(mc_prompts)]
    alphas = np.linspace(1.0, 2.0, T)
    checks = Checks()
    result = {"dtype": str(dtype).replace("torch.", ""), "shapes": shapes}
    rate = matmul_rate(device, dtype, size=512 if quick else 8192)
    result["matmul_flops_per_s"] = rate
    _log(f"  {result['dtype']} matrix product: {rate / 1e12:.1f} TFLOP/s")
    ids, mask = bench_decoding._batch(tok, prompts)
    kw = dict(max_new_tokens=n_new, batch_size=len(prompts), eos_token_id=[])

    def timed(fns, warm):
        return _perf.interleaved(fns, repeats=repeats, device=device, warmup=warm,
                                 log=lambda m: None)

    def p1():
        base = random_model(decode_shape, device, dtype, tokenizer=tok)
        experts = _perf.full_copies(base, T)

        def fns(n):
            k = dict(kw, max_new_tokens=n)
            out = {f"generate e{t + 1}": (lambda m=m: bench_decoding._hf_generate(
                m, ids, mask, n, tok.pad_token_id)) for t, m in enumerate(experts)}
            out["mixture, cached"] = lambda: mixture_generate(experts, alphas, tok, prompts, **k)
            out["ours, 1 expert"] = lambda: mixture_generate(experts[:1], [1.0], tok, prompts,
                                                             **k)
            return out

        times, res = timed(fns(n_new), fns(2))
        gens = [f"generate e{t + 1}" for t in range(T)]
        r = _perf.ratio(times, "mixture, cached", gens)
        own = _perf.ratio(times, "ours, 1 expert", "generate e1")
        same = res["ours, 1 expert"] == res["generate e1"]
        return {"ratio": r, "target": "<= 1.10", "met": r <= 1.10, "own_decoder_ratio": own,
                "same_tokens_as_generate": same, "times": times,
                "detail": f"mixture / sum of {T} generate = {r:.3f} (target <= 1.10); ours with "
                          f"1 expert / generate {own:.3f}; same tokens {same}"}

    def p2():
        base = random_model(decode_shape, device, dtype, tokenizer=tok)
        peft_model, experts = _perf.lora_experts(base, T)

        def fns(n):
            k = dict(kw, max_new_tokens=n)

            def one_adapter():
                peft_model.set_adapter("round1")
                return bench_decoding._hf_generate(peft_model, ids, mask, n, tok.pad_token_id)

            return {"generate, 1 adapter": one_adapter,
                    "mixture, stacked": lambda: mixture_generate(experts, alphas, tok, prompts,
                                                                 **k),
                    "mixture, one by one": lambda: mixture_generate(
                        experts, alphas, tok, prompts, batch_adapters=False, **k)}

        times, res = timed(fns(n_new), fns(2))
        r = _perf.ratio(times, "mixture, stacked", "generate, 1 adapter")
        r_seq = _perf.ratio(times, "mixture, one by one", "generate, 1 adapter")
        same = res["mixture, stacked"] == res["mixture, one by one"]
        return {"ratio": r, "target": "<= 1.3", "met": r <= 1.3, "one_by_one_ratio": r_seq,
                "same_tokens_stacked_vs_one_by_one": same, "times": times,
                "detail": f"T={T} stacked / one adapter = {r:.3f} (target <= 1.3); one by one "
                          f"{r_seq:.3f}; same tokens {same}"}

    def p3():
        model = random_model(decode_shape, device, dtype, tokenizer=tok)

        def fns(P, C):
            return {"per-choice loop": lambda: choice_nll(model, tok, P, C, batch_size=1,
                                                          share_prompts=False),
                    "prompt once": lambda: choice_nll(model, tok, P, C, batch_size=8)}

        times, res = timed(fns(mc_prompts, mc_choices), fns(mc_prompts[:2], mc_choices[:2]))
        speedup = _perf.ratio(times, "per-choice loop", "prompt once")
        agree = float(np.mean([np.argmin(a) == np.argmin(b) for a, b in
                               zip(res["prompt once"], res["per-choice loop"])]))
        return {"speedup": speedup, "target": ">= 3", "met": speedup >= 3.0,
                "argmin_agreement": agree, "times": times,
                "detail": f"prompt once vs per-choice loop {speedup:.2f}x (target >= 3); "
                          f"argmin agreement {agree:.3f} ({dtype})"}

    def speculative():
        base = random_model(decode_shape, device, dtype, tokenizer=tok)
        experts = _perf.full_copies(base, T)
        out = {}
        for batch in sorted({len(prompts), 1}, reverse=True):
            stats = {}

            def fns(n, batch=batch, stats=stats):
                k = dict(max_new_tokens=n, batch_size=batch, eos_token_id=[])

                def spec():
                    with _record_speculative_stats() as s:
                        res = mixture_generate(experts, alphas, tok, prompts[:batch],
                                               speculative_k=4, **k)
                    stats.update(s.as_dict())
                    return res

                return {"cached mixture": lambda: mixture_generate(experts, alphas, tok,
                                                                   prompts[:batch], **k),
                        "speculative": spec}

            times, res = timed(fns(min(n_new, 32)), fns(2))
            out[f"batch {batch}"] = {
                "speedup": _perf.ratio(times, "cached mixture", "speculative"),
                "acceptance": stats.get("acceptance_rate"),
                "same_tokens": res["speculative"] == res["cached mixture"], "times": times}
        detail = "; ".join(f"{k}: {v['speedup']:.2f}x, acceptance {v['acceptance']:.2f}, "
                           f"same tokens {v['same_tokens']}" for k, v in out.items())
        return {"cases": out, "detail": detail}

    def sft(shape, batch):
        from skw2s.hf.efficiency import collect_training_stats
        from skw2s.hf.training import EncodedExample, train_causal_lm

        def run():
            model = random_model(shape, device, dtype, tokenizer=tok)
            rng = np.random.RandomState(0)
            vocab = min(model.config.vocab_size, len(tok))

            def fit(n_steps):
                # ARC-like rows (quick: short ones): a prompt and a 4-token answer
                low, high = (24, 64) if quick else (160, 320)
                data = [EncodedExample(rng.randint(4, vocab, int(p) + 4).tolist(), int(p))
                        for p in rng.randint(low, high, batch * n_steps)]
                with collect_training_stats() as stats:
                    trained = train_causal_lm(model, tok, data, mode="lora", lr=1e-4,
                                              batch_size=batch, random_state=0)
                trained.unload()  # the next fit starts from the same plain model
                return stats

            fit(2)  # warm-up: kernels, allocator
            stats = fit(3 if quick else 8)
            eff = stats.useful_flops / (stats.seconds * rate)
            target = 0.35 if shape == "qwen2.5-0.5b" else None
            return {"efficiency": eff, "library_efficiency": stats.efficiency(),
                    "target": f">= {target}" if target else "",
                    "met": eff >= target if target else None, "stats": stats.as_dict(),
                    "batch": batch,
                    "detail": f"{shape} LoRA SFT: {stats.useful_flops / stats.seconds / 1e12:.1f} "
                              f"useful TFLOP/s = {eff:.2f} of the matrix product "
                              f"({stats.steps} steps of {batch} rows, "
                              f"padding {stats.padding:.0%})"}

        return run

    checks.run("P1 cached mixture vs sum of generate", p1)
    checks.run("P2 stacked LoRA mixture vs one adapter", p2)
    checks.run("P3 choice scoring vs per-choice loop", p3)
    checks.run("speculative vs cached mixture", speculative)
    # the larger shape at two batch sizes: how much of a step is fixed cost
    for shape, batch in ([("tiny", 4)] if quick else
                         [("smollm2-135m", 32), ("qwen2.5-0.5b", 32), ("qwen2.5-0.5b", 128)]):
        checks.run(f"SFT step efficiency ({shape}, batch {batch})", sft(shape, batch))
    result.update(ok=checks.ok, checks=checks.rows)
    return result


# -------------------------------------------------------------------------------------------
# part 4: torchrun and accelerate launch
# -------------------------------------------------------------------------------------------
def part_launch(ctx):
    import shutil

    from skw2s.hf.testing import tiny_causal_lm

    device = ctx["device"]
    work = Path(tempfile.mkdtemp(prefix="skw2s-launch-"))
    lm = tiny_causal_lm(work / "lm", seed=0, n_layers=2, hidden_size=32)
    script = str(CONFIGS / "launch_fit.py")
    checks = Checks()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))

    def in_process():
        out = work / "in-process.json"
        subprocess.run([sys.executable, script, lm, str(device), str(out)], env=env,
                       check=True, timeout=ctx["timeout"], capture_output=True, text=True)
        return json.loads(out.read_text())

    reference = {}

    def launched(name, launcher):
        def run():
            if "proba" not in reference:
                reference.update(in_process())
            out = work / f"{name}.json"
            cmd = launcher + [script, lm, str(device), str(out)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                                  timeout=ctx["timeout"])
            if proc.returncode != 0:
                return {"ok": False, "returncode": proc.returncode, "command": " ".join(cmd),
                        "output_tail": (proc.stdout + proc.stderr)[-3000:],
                        "detail": f"exit status {proc.returncode}"}
            got = json.loads(out.read_text())
            gap = _max_gap(got["proba"], reference["proba"])
            ok = gap <= PROB_TOL and got["device"].startswith(device.type)
            return {"ok": ok, "max_abs_diff": gap, "tolerance": PROB_TOL,
                    "world_size": got["world_size"], "model_device": got["device"],
                    "command": " ".join(cmd),
                    "detail": f"max |dp| vs in process {gap:.1e}; world size "
                              f"{got['world_size']}; model on {got['device']}"}

        return run

    torchrun = shutil.which("torchrun")
    torchrun = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    checks.run("torchrun --nproc_per_node=1", launched(
        "torchrun", torchrun + ["--standalone", "--nproc_per_node=1"]))
    accel = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
             "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if device.type == "cpu":
        accel.append("--cpu")
    checks.run("accelerate launch --num_processes 1", launched("accelerate", accel))
    return {"ok": checks.ok, "checks": checks.rows, "in_process": reference}


# -------------------------------------------------------------------------------------------
# driver
# -------------------------------------------------------------------------------------------
PART_FUNCS = {"tests": part_tests, "correctness": part_correctness, "speed": part_speed,
              "launch": part_launch}


def summary_rows(record):
    rows = []
    for part, res in record["parts"].items():
        checks = res.get("checks") or [{"name": part, "ok": res.get("ok"),
                                        "detail": res.get("error", "").splitlines()[-1:]}]
        for c in checks:
            detail = c.get("detail", "")
            if isinstance(detail, list):
                detail = " ".join(detail)
            rows.append({"part": part, "check": c["name"], "status": "ok" if c["ok"] else "FAILED",
                         "detail": detail[:140]})
        if part == "tests":
            rows[-1]["detail"] = json.dumps(res.get("counts", {}))
    return rows


def _fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def gpu_table(paths):
    """The GPU table of ``benchmarks/PERFORMANCE.md``, from the JSON records of one or more
    runs (later records add the parts that earlier ones lack)."""
    records = [json.loads(Path(p).read_text()) for p in paths]
    parts = {}
    for r in records:
        for name, part in r["parts"].items():
            parts.setdefault(name, (part, r))
    head = records[0]
    rows = []

    def add(part, check, figure, target="", ok=True):
        rows.append(f"| {part} | {check} | {figure} | {target} | {'yes' if ok else 'NO'} |")

    if "tests" in parts:
        c = parts["tests"][0].get("counts", {})
        add("tests", "tests marked `cuda`", f"{c.get('tests', 0) - c.get('skipped', 0)} run, "
            f"{c.get('failures', 0)} failed, {c.get('errors', 0)} errors", "all pass",
            parts["tests"][0]["ok"])
    for check in parts.get("correctness", ({"checks": []},))[0]["checks"]:
        if "max_abs_diff" in check:
            fig = (f"max abs diff {check['max_abs_diff']:.1e}, argmax differs on "
                   f"{check['argmax_flips']} rows")
            tgt = f"<= {check['tolerance']:g}"
        elif "max_rel_diff" in check:
            fig, tgt = f"max rel diff {check['max_rel_diff']:.1e}", f"<= {check['tolerance']:g}"
        else:
            fig, tgt = "same tokens", "identical"
        add("correctness (float32, vs CPU)", check["name"], fig, tgt, check["ok"])
    for check in parts.get("speed", ({"checks": []},))[0]["checks"]:
        name = check["name"]
        if not check["ok"]:
            add("speed (bfloat16)", name, "failed", "", False)
        elif "ratio" in check:
            add("speed (bfloat16)", name, f"{check['ratio']:.2f}x the baseline's time",
                check["target"], check["met"])
        elif "speedup" in check:
            add("speed (bfloat16)", name, f"{check['speedup']:.2f}x faster", check["target"],
                check["met"])
        elif "cases" in check:
            fig = "; ".join(f"{k}: {v['speedup']:.2f}x, acceptance {_fmt(v['acceptance'], '.2f')}"
                            for k, v in check["cases"].items())
            add("speed (bfloat16)", name, fig, "")
        elif "efficiency" in check:
            st = check["stats"]
            add("speed (bfloat16)", name, f"efficiency {check['efficiency']:.3f} "
                f"({st['useful_flops'] / st['seconds'] / 1e12:.1f} useful TFLOP/s, "
                f"{st['seconds'] / st['steps'] * 1e3:.0f} ms a step)", check["target"],
                True if check["met"] is None else check["met"])
    for check in parts.get("launch", ({"checks": []},))[0]["checks"]:
        add("launch", check["name"], f"world size {check.get('world_size')}, model on "
            f"{check.get('model_device')}, max abs diff vs in process "
            f"{_fmt(check.get('max_abs_diff'), '.1e')}", f"<= {PROB_TOL:g}", check["ok"])
    v = head["versions"]
    header = (f"{head['gpu']['name'] if head.get('gpu') else head['device']}; torch {v['torch']} "
              f"(CUDA {v['cuda']}), transformers {v['transformers']}, peft {v['peft']}, "
              f"accelerate {v['accelerate']}; bfloat16 matrix product "
              f"{parts['speed'][0]['matmul_flops_per_s'] / 1e12:.0f} TFLOP/s"
              if "speed" in parts else "")
    lines = [header, "", "| part | check | measured | target | met |", "|---|---|---|---|---|"]
    return "\n".join(lines + rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--quick", action="store_true",
                        help="tiny models and sizes: a dry run on a CPU in a minute or two")
    parser.add_argument("--out", default=None,
                        help="folder for gpu_check.json (default benchmarks/results/gpu, or "
                             "benchmarks/results/performance/quick with --quick)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--timeout", type=int, default=300,
                        help="seconds allowed to each subprocess (pytest, launchers)")
    parser.add_argument("--table", nargs="+", metavar="JSON",
                        help="print the markdown table of these records and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(gpu_table(args.table))
        return 0
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from skw2s.hf.models import resolve_device

    device = resolve_device(args.device)
    out = Path(args.out) if args.out else (
        _perf.QUICK_RESULTS if args.quick else HERE / "results" / "gpu")
    out.mkdir(parents=True, exist_ok=True)
    info = _perf.machine_info(device, torch.get_num_threads())
    record = {"benchmark": "gpu_check", "device": str(device), "quick": args.quick,
              "gpu": _gpu_info(device), "versions": _versions(), "machine": info,
              "source_sha256": source_digest(),
              "command": " ".join([Path(sys.executable).name] + sys.argv), "parts": {}}
    name = f"gpu_check{'_quick' if args.quick else ''}_{device.type}.json"
    path = out / name
    ctx = {"device": device, "quick": args.quick, "out": out, "timeout": args.timeout}
    _log(f"gpu check on {device}{' (' + record['gpu']['name'] + ')' if record['gpu'] else ''}; "
         f"torch {record['versions']['torch']}, transformers {record['versions']['transformers']}")
    for part in args.parts:
        _log(f"\n== {part} ==")
        start = time.perf_counter()
        try:
            res = PART_FUNCS[part](ctx)
        except Exception:  # noqa: BLE001 - recorded; the next part runs
            res = {"ok": False, "error": traceback.format_exc(limit=12)}
            _log(res["error"])
        res["seconds"] = round(time.perf_counter() - start, 1)
        record["parts"][part] = res
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str))
        tmp.replace(path)
    _log("")
    _perf.print_table(summary_rows(record), ["part", "check", "status", "detail"])
    ok = all(r.get("ok") for r in record["parts"].values())
    record["ok"] = ok
    path.write_text(json.dumps(record, indent=2, default=str))
    _log(f"\n{'all parts passed' if ok else 'SOME PARTS FAILED'}; raw numbers: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
