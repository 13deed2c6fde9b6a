"""Does a per-image edit need Adam to change a shape? (issue 15: a hypothesis for the translator's failure was
that Adam's per-pixel step sizes let the weak shape-changing part of the SDS gradient count.) `diffrep edit
--method sds --prompt "a red duck, side view"` on the toy world's first red mug seen from the side, 200 iterations, cosine decay, anchor 0.03,
with Adam at lr 0.1 (the default) and plain SGD at several rates; prints the kind of each output's silhouette
and its RMS to the input, and writes OUT.png (input, then the edits in the order printed):

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/lmc_edit_optimizer.py OUT.png"""

import json

from script_cli import command, script_main

_, (OUT,) = command(__doc__, {None: (1, 1)})

import torch
from PIL import Image

import diffrep
from diffrep.bench.lmc_translation import silhouette_kind, silhouettes
from diffrep.priors import load
from diffrep.priors.empirical import toyworld_data
from diffrep.spec import run_spec
from diffrep.toyworld.vocabulary import COLOURS, KINDS, VIEWS
from diffrep.export import check_writable

script_main(lambda: check_writable(OUT, "OUT.png", parent=True))

torch.set_num_threads(1)
prior = load("toyworld")
data = toyworld_data(10_000, 32, 0)
masks, kind = silhouettes(data["images"].float() / 127.5 - 1), data["kind"].long()
first = ((kind == KINDS.index("mug")) & (data["colour"] == COLOURS.index("red")) & (data["view"] == VIEWS.index("side"))).nonzero()[0, 0]
x = data["images"][first:first + 1].float() / 127.5 - 1
outs = [x[0]]
for optimizer, lr in [("adam", 0.1), ("sgd", 0.03), ("sgd", 0.1), ("sgd", 0.3), ("sgd", 1.0), ("sgd", 3.0)]:
    options = run_spec("pixels", "sds", iters=200, lr=lr, lr_schedule="cosine", optimizer=optimizer,
                       t_range=(0.02, 0.98)).options
    y = diffrep.edit(prior, x, prompt="a red duck, side view", method=options, seed=0).images
    print(json.dumps({"optimizer": optimizer, "lr": lr, "kind_by_silhouette": KINDS[int(silhouette_kind(y, masks, kind)[0])],
                      "rms_to_input": round((y - x).pow(2).mean().sqrt().item(), 3)}), flush=True)
    outs.append(y[0])
img = ((torch.stack(outs).clamp(-1, 1) + 1) * 127.5).round().byte().permute(2, 0, 3, 1).flatten(1, 2).numpy()
Image.fromarray(img).resize((img.shape[1] * 4, img.shape[0] * 4), Image.NEAREST).save(OUT)
