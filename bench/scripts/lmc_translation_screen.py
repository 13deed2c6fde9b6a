"""Screens of the amortised translator's training (issue 15: the suite's translators re-shade mugs instead of
turning them into ducks, chairs, houses, cars): one translator, trained and scored as `diffrep bench
lmc-translation` scores (`score_all` on the same held-out mugs, silhouette kind included), printed as one JSON line;
the outputs for 6 mugs saved as OUT/grid.pt:

    .venv/bin/python bench/scripts/lmc_translation_screen.py LOSS STEPS LR CHANNELS LEVELS OUT [ANCHOR T_MIN CORRECTIVE PRIOR]

The runs of 2026-11-30 (docs/benchmarks.md, *Amortised translation*):

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_screen.py sds 2000 3e-3 16 3 OUT
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_screen.py sds 6000 3e-3 16 3 OUT
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_screen.py sds 2000 3e-3 32 4 OUT
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_screen.py sds 2000 3e-3 16 3 OUT 0.1 0.5
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_screen.py sds 2000 1e-2 16 3 OUT 0.01

The LMC-SDS loss with the corrective trained off the data (2026-12-02):

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_screen.py lmc-sds 6000 3e-3 16 3 OUT 0.1 0.02 perturbed

On the learned tiny prior (2026-12-02; the toy-world set is still the source and the labellers' reference):

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_screen.py lmc-sds 6000 3e-3 16 3 OUT 0.1 0.02 clean tiny
    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_translation_screen.py sds 6000 3e-3 16 3 OUT 0.1 0.02 clean tiny

Arguments: LOSS STEPS LR CHANNELS LEVELS OUT [ANCHOR (0.1)] [T_MIN as a fraction of T (0.02)] [CORRECTIVE (lmc-sds:
a shipped one's name or a folder; default the clean shipped one; other losses: clean)] [PRIOR (toyworld)]."""

import json
from pathlib import Path

import torch

from diffrep.bench.lmc_translation import score_all, scoring_data
from diffrep.methods.translator import load_translator, translate_images
from diffrep.priors import load
from diffrep.training.config import TranslatorTrainConfig
from diffrep.training.translator import train

from script_cli import command, refuse  # noqa: E402

_, args = command(__doc__, {None: (6, 10)})
try:
    loss, steps, lr, channels, levels, out = args[0], int(args[1]), float(args[2]), int(args[3]), int(args[4]), Path(args[5])
    anchor = float(args[6]) if len(args) > 6 else 0.1
    t_min = float(args[7]) if len(args) > 7 else 0.02
except ValueError as e:
    refuse(f"STEPS, LR, CHANNELS, LEVELS, ANCHOR and T_MIN take numbers: {e}")
corrective = args[8] if len(args) > 8 and args[8] != "clean" else None  # clean: the default
prior_name = args[9] if len(args) > 9 else "toyworld"
torch.set_num_threads(1)
prior = load(prior_name)
config = TranslatorTrainConfig(out=out, prior=prior_name, loss=loss, steps=steps, lr=lr, channels=channels, levels=levels, anchor=anchor,
                               t_range=(t_min, 0.98), checkpoint_every=500, device="cpu", corrective=corrective)
data, test_idx = scoring_data(config, prior.image_shape[-1])
train(config, prior=prior, resume=True)
seconds = json.loads((out / "checkpoint.json").read_text()).get("seconds")  # over every resume (None: an older checkpoint)
model = load_translator(out, prior=prior_name)
scores, outs = score_all(lambda x, name: translate_images(model, x, name), data, test_idx, config.targets)
print(json.dumps({**({} if prior_name == "toyworld" else {"prior": prior_name}), "loss": loss, "steps": steps, "lr": lr, "channels": channels, "levels": levels, "anchor": anchor,
                  "t_min": t_min, **({} if corrective is None else {"corrective": corrective}), "train_s": None if seconds is None else round(seconds), **scores}))
grid = torch.cat([torch.stack([data["images"][test_idx[i]], *(outs[t][i] for t in config.targets)]) for i in range(6)])
torch.save(grid, out / "grid.pt")
