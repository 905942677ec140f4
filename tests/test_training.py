"""Training core: weighted SFT and classification, LoRA and head modes, torchrun DDP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from skw2s.hf.models import load_causal_lm, load_sequence_classifier
from skw2s.hf.training import (
    encode_sft,
    extract_features,
    train_causal_lm,
    train_classifier,
)


def _answer_nll(model, example):
    ids = torch.tensor([example.input_ids], device=model.device)
    with torch.no_grad():
        logp = model(ids).logits.log_softmax(-1)[0, example.answer_start - 1 : -1]
    target = ids[0, example.answer_start :]
    return -logp[torch.arange(len(target)), target].mean().item()


def test_encode_sft_boundaries(tiny_lm):
    _, tok = load_causal_lm(tiny_lm, device="cpu")
    enc = encode_sft(tok, ["Question: x?\nAnswer:"], [" yes"], max_length=64)[0]
    answer = tok(" yes", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert enc.input_ids[enc.answer_start :] == answer
    assert enc.n_answer_tokens == len(answer)


def test_encode_sft_truncates_prompt_from_left(tiny_lm):
    _, tok = load_causal_lm(tiny_lm, device="cpu")
    with pytest.warns(UserWarning, match="truncated from the left"):
        enc = encode_sft(tok, ["word " * 100 + "END"], [" yes"], max_length=16)[0]
    assert len(enc.input_ids) == 16
    assert tok.decode(enc.input_ids[: enc.answer_start]).endswith("END")


def test_encode_sft_rejects_empty_answer(tiny_lm):
    _, tok = load_causal_lm(tiny_lm, device="cpu")
    with pytest.raises(ValueError, match="empty"):
        encode_sft(tok, ["q"], [""], append_eos=False)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_sft_lowers_answer_loss(tiny_lm, mode):
    model, tok = load_causal_lm(tiny_lm, device="cpu")
    enc = encode_sft(tok, ["Question: sky colour?\nAnswer:"] * 8, [" blue"] * 8)
    before = _answer_nll(model, enc[0])
    lr = {"full": 1e-2, "lora": 5e-2}[mode]
    model = train_causal_lm(model, tok, enc, mode=mode, lr=lr, n_epochs=6, batch_size=4,
                            random_state=0)
    # LoRA on attention moves a random tiny model less: its final norm bounds the logits.
    assert _answer_nll(model, enc[0]) < before - {"full": 0.5, "lora": 0.2}[mode]


def test_sft_zero_weight_tokens_are_not_trained(tiny_lm):
    model, tok = load_causal_lm(tiny_lm, device="cpu")
    enc = encode_sft(tok, ["Q: a?\nA:", "Q: b?\nA:"], [" one", " two"])
    weights = [np.ones(enc[0].n_answer_tokens), np.zeros(enc[1].n_answer_tokens)]
    before = [_answer_nll(model, e) for e in enc]
    model = train_causal_lm(model, tok, enc, weights, lr=1e-2, n_epochs=5, batch_size=2,
                            random_state=0)
    after = [_answer_nll(model, e) for e in enc]
    assert after[0] < before[0] - 0.5
    with pytest.raises(ValueError, match="No answer token"):
        train_causal_lm(model, tok, enc, [np.zeros(e.n_answer_tokens) for e in enc])
    with pytest.raises(ValueError, match="expected"):
        train_causal_lm(model, tok, enc, [np.ones(1), np.ones(1)])


def test_sft_is_seeded(tiny_lm):
    results = []
    for _ in range(2):
        model, tok = load_causal_lm(tiny_lm, device="cpu")
        enc = encode_sft(tok, ["Q: a?\nA:", "Q: b?\nA:", "Q: c?\nA:"], [" x", " y", " z"])
        model = train_causal_lm(model, tok, enc, lr=1e-2, n_epochs=2, batch_size=2, random_state=7)
        results.append(model.lm_head.weight.detach().clone())
    torch.testing.assert_close(results[0], results[1])


TEXTS = ["Q: sky A: blue", "Q: sky A: green", "Q: grass A: green", "Q: grass A: blue"] * 6
LABELS = np.array([1, 0, 1, 0] * 6)


@pytest.mark.parametrize("mode", ["full", "lora", "head"])
def test_classifier_modes_fit(tiny_lm, mode):
    model, tok = load_sequence_classifier(tiny_lm, device="cpu")
    lr = {"full": 1e-2, "lora": 1e-2, "head": 0.1}[mode]
    epochs = {"full": 6, "lora": 6, "head": 300}[mode]
    model = train_classifier(model, tok, TEXTS, LABELS, mode=mode, lr=lr, n_epochs=epochs,
                             batch_size=8, random_state=0)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        pred = model(**enc).logits.argmax(-1).numpy()
    assert (pred == LABELS).mean() >= 0.9


def test_head_mode_respects_sample_weight(tiny_lm):
    # With all weight on the label-1 examples, the head must predict 1 everywhere it is unsure.
    model, tok = load_sequence_classifier(tiny_lm, device="cpu")
    w = (LABELS == 1).astype(float)
    model = train_classifier(model, tok, TEXTS, LABELS, w, mode="head", lr=0.1, n_epochs=200,
                             random_state=0)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        pred = model(**enc).logits.argmax(-1).numpy()
    assert pred.mean() == 1.0


def test_extract_features_match_head_input(tiny_lm):
    model, tok = load_sequence_classifier(tiny_lm, device="cpu")
    feats = extract_features(model, tok, TEXTS[:3], batch_size=2)
    head = model.score
    enc = tok(TEXTS[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    torch.testing.assert_close(head(torch.as_tensor(feats)), logits, rtol=1e-4, atol=1e-5)


def test_classifier_bad_inputs(tiny_lm):
    model, tok = load_sequence_classifier(tiny_lm, device="cpu")
    with pytest.raises(ValueError, match="Unknown mode 'qlora'"):
        train_classifier(model, tok, TEXTS, LABELS, mode="qlora")
    with pytest.raises(ValueError, match="sample_weight"):
        train_classifier(model, tok, TEXTS, LABELS, np.full(len(LABELS), np.nan))


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, torch
    import torch.distributed as dist
    from skw2s.hf.models import load_causal_lm
    from skw2s.hf.training import encode_sft, train_causal_lm
    model, tok = load_causal_lm(sys.argv[1], device="cpu")
    enc = encode_sft(tok, ["Question: sky colour?\\nAnswer:"] * 16, [" blue"] * 16)
    ids = torch.tensor([enc[0].input_ids])
    def nll():
        with torch.no_grad():
            lp = model(ids).logits.log_softmax(-1)[0, enc[0].answer_start - 1:-1]
        return -lp[torch.arange(lp.shape[0]), ids[0, enc[0].answer_start:]].mean().item()
    before = nll()
    model = train_causal_lm(model, tok, enc, lr=1e-2, n_epochs=3, batch_size=4, random_state=0)
    after = nll()
    # both replicas must end with identical weights (gradients were all-reduced)
    w = model.lm_head.weight.detach().clone()
    ws = [torch.zeros_like(w) for _ in range(dist.get_world_size())]
    dist.all_gather(ws, w)
    same = all(torch.equal(ws[0], x) for x in ws)
    out = dict(rank=dist.get_rank(), world=dist.get_world_size(), backend=dist.get_backend(),
               before=before, after=after, same=same)
    with open(os.path.join(sys.argv[2], f"rank{dist.get_rank()}.json"), "w") as fh:
        json.dump(out, fh)
    """
)


@pytest.mark.slow
def test_torchrun_two_process_data_parallel(tiny_lm, tmp_path):
    import json

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(script), tiny_lm, str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for res in results:
        assert res["world"] == 2 and res["backend"] == "gloo"
        assert res["after"] < res["before"] - 0.5
        assert res["same"]
