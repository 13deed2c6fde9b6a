"""Screen of the amortised translator's training on a few (mug, duck) pairs (issue 15): can the network that
re-shades every mug of the full set translate when it only has to learn NPAIRS training mugs into ducks?
The suite's trainer (`diffrep.training.translator.train`, SDS, its other defaults) with its pairs cut to the
first NPAIRS (mug, duck) pairs; scored on those same mugs (kind of the output's silhouette, as the suite does);
writes OUT/pairs.png (input | output, a row each, first 8):

    .venv/bin/python bench/scripts/lmc_translation_pairs.py NPAIRS STEPS LR OUT

The runs of 2026-12-01 (docs/benchmarks.md, *Amortised translation*):

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_pairs.py 1 600 1e-3 OUT
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_pairs.py 16 600 1e-3 OUT
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_pairs.py 16 2400 1e-3 OUT"""

import json
from pathlib import Path

import torch
from PIL import Image

import diffrep.training.translator as translator
from diffrep.bench.lmc_translation import silhouette_kind, silhouettes
from diffrep.methods.translator import load_translator, translate_images
from diffrep.priors import load
from diffrep.toyworld.vocabulary import KINDS
from diffrep.training.config import TranslatorTrainConfig

from script_cli import command, refuse  # noqa: E402

_, args = command(__doc__, {None: (4, 4)})
try:
    npairs, steps, lr, out = int(args[0]), int(args[1]), float(args[2]), Path(args[3])
except ValueError as e:
    refuse(f"NPAIRS, STEPS and LR take numbers: {e}")
torch.set_num_threads(1)
all_pairs = translator.training_pairs


def first_duck_pairs(prior, data, train_idx, targets):
    pairs, conds = all_pairs(prior, data, train_idx, targets)
    return pairs[pairs[:, 1] == KINDS.index("duck")][:npairs], conds


translator.training_pairs = first_duck_pairs  # the screen's one change to the suite's trainer
prior = load("toyworld")
config = TranslatorTrainConfig(out=out, loss="sds", steps=steps, lr=lr, checkpoint_every=0, device="cpu")
translator.train(config, prior=prior)
data = translator.source_images(config, prior.image_shape[-1])
train_idx, _ = translator.source_split(data["kind"], KINDS.index(config.source), config.holdout)
pairs, _ = first_duck_pairs(prior, data, train_idx, [KINDS.index("duck")])
x = data["images"][pairs[:, 0]]
y = translate_images(load_translator(out, prior="toyworld"), x, "duck")
kinds = silhouette_kind(y, silhouettes(data["images"]), data["kind"])
print(json.dumps({"npairs": npairs, "steps": steps, "lr": lr,
                  "duck_by_silhouette": round((kinds == KINDS.index("duck")).float().mean().item(), 3)}))
rows = torch.stack([x[:8], y[:8]], 1)  # [R, 2, C, H, W]
img = ((rows.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 3, 1, 4, 2).flatten(0, 1).flatten(1, 2).numpy()
Image.fromarray(img).resize((img.shape[1] * 4, img.shape[0] * 4), Image.NEAREST).save(out / "pairs.png")
