"""The scene blob labeller's calibration (issue 16): what `BlobLabeller` reads in fresh ground-truth panoramas
of the first 6 (the suite's) and 24 data prompts, 32 each (`prompt_scenes`, seed 1: the suite's
`fresh_prompt_blobs`), and, given canvas files, in those canvases:

    OMP_NUM_THREADS=1 .venv/bin/python bench/scripts/panorama_scenes_labeller.py [CANVASES.pt ...]

A canvas file holds the DDRep canvases of the suite's 6 prompts x 2 seeds, 2 canvases each, in that order
(``[24, C, H, Wc]``, as `panorama_scenes_screen.py` makes them). Prints one JSON line each."""

import json
import sys

import torch

from diffrep.bench import panorama_scenes as ps
from diffrep.priors import load
from diffrep.toyworld.scene_text import ScenePrompt, parse_scene_prompt

torch.set_num_threads(1)
prior = load("toyworld-scenes")
labeller = ps.BlobLabeller(ps.data_scenes(prior))


def mean_scores(rows: list[dict]) -> dict:
    return {k: round(sum(r[k] for r in rows) / len(rows), 3) for k in rows[0]}


for k in (6, 24):
    rows = []
    for prompt in ps.scene_prompts(prior, k):
        q = parse_scene_prompt(prompt)
        fresh = ps.prompt_scenes(q, ps.GT_SCENES, prior.image_shape[-1], 1)
        if fresh is not None:
            rows.append(ps.blob_scores(labeller, fresh, ScenePrompt(q)))
    print(json.dumps({"fresh ground truth": f"{len(rows)} prompts", **mean_scores(rows)}), flush=True)
prompts = ps.scene_prompts(prior, 6)
for path in sys.argv[1:]:
    canvases = torch.load(path).view(len(prompts), 2, 2, *prior.image_shape[:1], prior.image_shape[-1], -1)
    rows = [ps.blob_scores(labeller, canvases[i, s], ScenePrompt(parse_scene_prompt(p)))
            for i, p in enumerate(prompts) for s in range(2)]
    print(json.dumps({"canvases": path, **mean_scores(rows)}), flush=True)
