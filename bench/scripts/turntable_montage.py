"""A montage of turntable GIFs for docs: one row per GIF, frames at the given fractions of the turn.

    python bench/scripts/turntable_montage.py OUT.png A.gif B.gif ... [--frames 0,0.25,0.5] [--scale 3]"""

import argparse

from PIL import Image, ImageSequence

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("gifs", nargs="+")
parser.add_argument("--frames", default="0,0.25,0.5")
parser.add_argument("--scale", type=int, default=3)
a = parser.parse_args()
fractions = [float(f) for f in a.frames.split(",")]
rows = []
for path in a.gifs:
    frames = [f.convert("RGB") for f in ImageSequence.Iterator(Image.open(path))]
    rows.append([frames[int(f * len(frames)) % len(frames)] for f in fractions])
w, h = rows[0][0].size
out = Image.new("RGB", (len(fractions) * (w + 2), len(rows) * (h + 2)), "white")
for r, row in enumerate(rows):
    for c, frame in enumerate(row):
        out.paste(frame, (c * (w + 2), r * (h + 2)))
out.resize((out.width * a.scale, out.height * a.scale), Image.NEAREST).save(a.out)
