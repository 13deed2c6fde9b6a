"""Score saved translators again with the suite's current scorer (`score_all`, every column, on the same
held-out mugs), e.g. after a column was added:

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_rescore.py DIR [DIR ...]

One JSON line per translator folder (means over the four targets, and per target)."""

import json
import sys

import torch

from diffrep.bench.lmc_translation import score_all, scoring_data
from diffrep.methods.translator import load_translator, translate_images
from diffrep.training.config import TranslatorTrainConfig

torch.set_num_threads(1)
data, test_idx = scoring_data(TranslatorTrainConfig(out=None), 32)
for folder in sys.argv[1:]:
    model = load_translator(folder, prior="toyworld")
    scores, _ = score_all(lambda x, name: translate_images(model, x, name), data, test_idx, tuple(model.record["targets"]))
    print(json.dumps({"translator": folder, "loss": model.record["loss"], "steps": model.record["training"]["step"]} | scores), flush=True)
