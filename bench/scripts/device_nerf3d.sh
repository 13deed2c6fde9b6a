#!/usr/bin/env bash
# The nerf3d runs the CPU could not fit (the mug's 3-D diversity, the hash grid), run on a lent GPU with the
# CPU's finished runs carried in bench/results/.nerf3d.cache: the suite skips those and writes nerf3d-cuda.json,
# each row naming its device. Wheels in .whl/, the toy-world set in .dcache/ (bench/scripts/device_gpu.sh).
set -u -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src DIFFREP_CACHE_DIR=$PWD/.dcache PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
timeout "${LIMIT:-330}" python3 -c "import sys; from diffrep.cli import main; sys.exit(main())" bench nerf3d --device cuda 2>&1 | grep -v "from the cache"
cp bench/results/.nerf3d.cache/rows.jsonl "$OUT/" 2>/dev/null; cp bench/results/nerf3d-cuda.json "$OUT/" 2>/dev/null; ls "$OUT"
