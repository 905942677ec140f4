"""A tiny weak-to-strong job for tests/test_distributed.py, run plainly or under torchrun.

Usage: ``python distributed_job.py MODEL_DIR OUT``; each rank writes ``OUT.{rank}.json`` with
its predictions and :func:`skw2s.hf.distributed.inference_counts`. The learners are head-mode
classifiers, trained in full batch on every rank alike, so that only inference is spread.
"""
import json
import os
import sys

import numpy as np
import torch

torch.set_num_threads(1)

from skw2s import LLMAdaBoostClassifier, LLMClassifier, WeakToStrongPipeline
from skw2s.hf.distributed import inference_counts
from skw2s.hf.decoding import choice_nll_mixture, mixture_generate, token_predictions
from skw2s.hf.models import load_causal_lm
from skw2s.hf.training import encode_sft

lm, out = sys.argv[1], sys.argv[2]
rng = np.random.RandomState(0)
words = ["oxygen", "carbon", "water", "iron", "helium", "sun", "moon", "earth"]
texts, labels = [], []
for i in range(40):
    a, b = rng.choice(words, 2, replace=False)
    label = int(rng.rand() < 0.5)
    texts.append(f"Q: {a} {b} A: {'yes' if label else 'no'} {i % 7}")
    labels.append(label)
X, y = texts[:28], np.array(labels[:28])
X_test, y_test = texts[28:], np.array(labels[28:])


def learner(spec):
    return LLMClassifier(spec, mode="head", lr=0.05, n_epochs=40, batch_size=4, device="cpu")


pipe = WeakToStrongPipeline(LLMAdaBoostClassifier(learner(lm + "[:1]"), n_estimators=2),
                            learner(lm), random_state=0)
pipe.fit(X, y, X_test=X_test, y_test=y_test)
boost = LLMAdaBoostClassifier(learner(lm + "[:1]"), n_estimators=2, random_state=1).fit(X, y)
model, tok = load_causal_lm(lm, device="cpu")
prompts = ["Question: sky colour?\nAnswer:", "Q: sky?", "Question: which gas?\nAnswer:",
           "Question: Which is bigger?\nAnswer:", "Question: ice is?\nAnswer:"]
choices = [["blue", "green"], ["up", "down", "left"], ["carbon dioxide", "helium"],
           ["sun", "moon"], ["hot", "cold"]]
nll = choice_nll_mixture([model, model], [1.0, 2.0], tok, prompts, choices, batch_size=2)
tokens = mixture_generate([model], [1.0], tok, prompts, max_new_tokens=5, batch_size=2,
                          eos_token_id=[])
enc = encode_sft(tok, prompts, [" " + c[0] for c in choices])
preds = token_predictions(model, tok, enc, batch_size=2)
payload = {
    "rank": int(os.environ.get("RANK", "0")), "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    "student_proba": pipe.student_.predict_proba(X_test).tolist(),
    "report": pipe.report_.accuracy.tolist(),
    "boost_proba": boost.predict_proba(X_test).tolist(),
    "nll": [r.tolist() for r in nll], "tokens": tokens,
    "preds": [r.tolist() for r in preds] if isinstance(preds, list) else preds,
    "counts": inference_counts(),
}
with open(f"{out}.{payload['rank']}.json", "w") as fh:
    json.dump(payload, fh, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
