"""A LoRA fit for the launch part of ``benchmarks/gpu_check.py``.

Usage: ``python launch_fit.py MODEL_DIR DEVICE OUT.json``, plain or under ``torchrun`` /
``accelerate launch``. Fits :class:`skw2s.LLMClassifier` (LoRA) on short yes/no texts and
writes the test probabilities, the world size and the model's device to ``OUT.json`` (rank 0
only).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(model_dir, device, out):
    from gpu_check import binary_data

    from skw2s import LLMClassifier

    X, y = binary_data(32)
    X_test, _ = binary_data(16, seed=1)
    est = LLMClassifier(model_dir, mode="lora", lr=1e-2, n_epochs=2, batch_size=8, lora_r=4,
                        device=device, dtype="float32", random_state=0)
    est.fit(X, y)
    proba = est.predict_proba(X_test)
    if int(os.environ.get("RANK", "0")) == 0:
        Path(out).write_text(json.dumps({
            "proba": proba.tolist(),
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "device": str(est.model_.device),
        }))


if __name__ == "__main__":
    main(*sys.argv[1:4])
