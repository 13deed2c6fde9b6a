"""Score saved translators again with the suite's current scorer (`score_all`, every column, on the same
held-out mugs), e.g. after a column was added:

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_rescore.py DIR [DIR ...]

One JSON line per translator folder (means over the four targets, and per target)."""

import json
import sys

import torch

from diffrep.bench.lmc_translation import saturated_silhouettes, score_all, silhouettes
from diffrep.bench.prior_quality import chroma
from diffrep.methods.translator import load_translator, translate_images
from diffrep.toyworld.vocabulary import KINDS
from diffrep.training.config import TranslatorTrainConfig
from diffrep.training.translator import source_images, source_split

torch.set_num_threads(1)
base = TranslatorTrainConfig(out=None)
data = source_images(base, 32)
data |= {"chroma": chroma(data["images"]), "silhouettes": silhouettes(data["images"]),
         "saturated": saturated_silhouettes(data["images"])}
_, test_idx = source_split(data["kind"], KINDS.index(base.source), base.holdout)
for folder in sys.argv[1:]:
    model = load_translator(folder, prior="toyworld")
    scores, _ = score_all(lambda x, name: translate_images(model, x, name), data, test_idx, tuple(model.record["targets"]))
    print(json.dumps({"translator": folder, "loss": model.record["loss"], "steps": model.record["training"]["step"]} | scores), flush=True)
