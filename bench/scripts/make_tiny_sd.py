"""Write tiny random-weight Stable Diffusion and DeepFloyd IF folders (no download): stand-ins for the real
models with their layout, for trying `--prior sd:FOLDER` / `--prior if:FOLDER` end to end on a CPU.

    python bench/scripts/make_tiny_sd.py outputs/tiny-sd [--if outputs/tiny-if] [--v-prediction]
"""

import argparse

from diffrep.priors.sd_tiny import make_tiny_if, make_tiny_sd

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("folder", help="the Stable Diffusion folder to write")
parser.add_argument("--if", dest="if_folder", help="also write a DeepFloyd IF stage I folder here")
parser.add_argument("--v-prediction", action="store_true", help="a v-prediction model (as SD 2.x at 768²)")
args = parser.parse_args()
print(make_tiny_sd(args.folder, prediction_type="v_prediction" if args.v_prediction else "epsilon"))
if args.if_folder:
    print(make_tiny_if(args.if_folder))
