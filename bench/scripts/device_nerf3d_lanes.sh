#!/usr/bin/env bash
# The one-instance NeRF runs of bench/scripts/nerf3d_lanes.py on a lent machine (the `device` tool): 14 one-thread
# CPU lanes over `jobs`, one GPU lane over `jobs gpu`; the runs' weights and run.json come back as tarballs in $OUT,
# to be scored here (`nerf3d_lanes.py score`). Wheels in .whl/ (tyro and what it needs, platformdirs); the toy-world
# set is rendered there first (12 s), so the lanes share its cache. LIMIT: seconds the lanes may run.
set -u -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src DIFFREP_CACHE_DIR=/tmp/dcache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
nproc; nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"
python3 -c "from diffrep.priors.empirical import toyworld_data; toyworld_data(10000, 32, 0)" || exit 1
s=bench/scripts/nerf3d_lanes.py
python3 $s jobs gpu | timeout "${LIMIT:-330}" xargs -d '\n' -n 1 python3 $s sample /tmp/runs >$OUT/gpu.log 2>&1 &
python3 $s jobs | timeout "${LIMIT:-330}" xargs -d '\n' -n 1 -P "${LANES:-14}" python3 $s sample /tmp/runs 2>&1 | tee $OUT/cpu.log
wait; pkill -f nerf3d_lanes.py; sleep 1  # the runs the limit cut off (timeout ends xargs, not its children)
cd /tmp/runs && ls | split -l 16 - /tmp/chunk-  # ~0.55 MB a run: 16 runs a tarball, under the 16 MiB a file
for c in /tmp/chunk-*; do tar czf $OUT/runs-${c#/tmp/chunk-}.tgz $(sed 's|$|/run.json|' $c) $(sed 's|$|/rep.safetensors|' $c); done
ls -la $OUT
