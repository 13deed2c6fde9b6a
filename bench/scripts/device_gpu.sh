#!/usr/bin/env bash
# The GPU figures, run once on a lent machine (the `device` tool): sd-cost on CUDA (fp16), and the shipped
# LMC-SDS correctives for the toyworld and tiny priors. The machine has its own python3 with torch, transformers
# and huggingface_hub; diffusers, tyro and the rest travel as wheels in .whl/, the toy-world set in .dcache/.
# Outputs land in $OUT (at most 8 files come back).
set -u -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src DIFFREP_CACHE_DIR=$PWD/.dcache PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -c "import sys; from diffrep.cli import main; sys.exit(main())" "$@"\n' >/tmp/bin/diffrep
chmod +x /tmp/bin/diffrep && export PATH=/tmp/bin:$PATH
nvidia-smi -L; python3 -c "import torch, diffusers; print(torch.__version__, diffusers.__version__, torch.cuda.get_device_name())"
timeout 60 diffrep bench sd-cost --quick --device cuda --results /tmp/q 2>&1 | tail -3
timeout 240 diffrep bench sd-cost --device cuda --results /tmp/r 2>&1 | tee $OUT/sd-cost-cuda.log
cp /tmp/r/sd-cost-cuda.json $OUT/ 2>/dev/null
for p in toyworld tiny; do
  timeout 150 diffrep train-corrective --prior $p --out /tmp/corr-$p --steps 5000 --device cuda 2>&1 | tr '\r' '\n' | grep -E "5000/5000|error|Error|weights" | tail -3
  cp /tmp/corr-$p/corrective.safetensors $OUT/corr-$p.safetensors 2>/dev/null
  cp /tmp/corr-$p/corrective.json $OUT/corr-$p.json 2>/dev/null
  cp /tmp/corr-$p/train_log.jsonl $OUT/corr-$p-log.jsonl 2>/dev/null
done
ls -la $OUT
