#!/usr/bin/env bash
# Label data/fcc/candidates.jsonl with SevenNet on a lent GPU machine (Python 3.12 + torch there),
# many worker processes sharing the GPU. Wheels for sevenn/ase/spglib/matscipy travel in .whl/.
# Usage (device tool): bash scripts/label_on_gpu.sh <workers> <seconds>
set -u
W=${1:-15}; T=${2:-420}; OUT=${OUT:-/tmp/out}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, sevenn, e3nn, torch_geometric; print('torch', torch.__version__, 'sevenn', sevenn.__version__, 'e3nn', e3nn.__version__, 'pyg', torch_geometric.__version__, torch.cuda.is_available())" || exit 1
mkdir -p /tmp/lab
python3 -m ecdflow.labelling.dcdft > /tmp/lab/dcdft-in.jsonl
timeout "$T" python3 -m ecdflow.labelling.sevennet /tmp/lab/dcdft-in.jsonl /tmp/lab/dcdft.jsonl --device cuda > /tmp/lab/log-dcdft.txt 2>&1 &
for i in $(seq 0 $((W-1))); do
  timeout "$T" python3 -m ecdflow.labelling.sevennet data/fcc/candidates.jsonl /tmp/lab/labels-$i.jsonl \
    --device cuda --shard "$i/$W" --shuffle --skip data/fcc/labels/sevennet-*.jsonl > /tmp/lab/log-$i.txt 2>&1 &
done
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; wc -l /tmp/lab/labels-*.jsonl | tail -1
wait
cat /tmp/lab/labels-*.jsonl > "$OUT/labels.jsonl"
cp /tmp/lab/dcdft.jsonl "$OUT/dcdft.jsonl" 2>/dev/null
tail -n 3 /tmp/lab/log-*.txt | grep -v Warn > "$OUT/logs.txt"
wc -l "$OUT"/*.jsonl
grep -c '"ok"' "$OUT/labels.jsonl"
