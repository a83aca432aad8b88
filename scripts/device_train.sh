#!/usr/bin/env bash
# GPU-length training on a lent device machine (issue 41, lever 3: capacity), about 10 minutes,
# weights and card written to $OUT/run. The product never needs a GPU: this only makes a candidate,
# which ships by a rule written in docs/model.md before the run, like every CPU candidate.
#
# Prepare here, once (the device machine is bare: no MONAI, nibabel, pydicom, no ../shared):
#   printf '/.whl/\n/.anatomy/\n' >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl monai==1.6.1 nibabel==5.4.2 pydicom==3.0.2
#   cp -r ../shared/data/anatomy .anatomy            # 52 MB: with the tree and wheels, under the 64 MiB carried
# On the device (the `device` tool): command "bash scripts/device_train.sh", carry [".whl", ".anatomy"],
# timeout_s 780. Then: mrclass-bids-rethreshold and the candidate's rule, here, on CPU.
# Smoke test on CPU: OUT=/tmp/dev ANATOMY=phantom MINUTES=0.2 WORKERS=0 VAL=32 bash scripts/device_train.sh
set -euo pipefail
: "${OUT:?set OUT to the folder the run is written to}"
MINUTES=${MINUTES:-9}          # training budget; validation and writing the card come on top
ARCH=${ARCH:-wide}             # bidsapp.model.network.ARCHS
ANATOMY=${ANATOMY:-.anatomy}
WORKERS=${WORKERS:-$(( $(nproc) - 2 ))}  # simulation, not the GPU, bounds the series per minute
VAL=${VAL:-960}
SEED=${SEED:-20261219}
PYTHON=${PYTHON:-python3}
if [ -d .whl ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
"$PYTHON" -m bidsapp.train.train --anatomy "$ANATOMY" --out "$OUT/run" --arch "$ARCH" --minutes "$MINUTES" \
  --steps 1000000 --batch 64 --train-slices 4 --lr 1e-3 --seed "$SEED" --workers "$WORKERS" --val-size "$VAL" \
  --device auto --bf16 2>&1 | tee "$OUT/train.log"
rm -f "$OUT/run/checkpoint.pt"   # optimizer state: larger than what comes back, and useless without the machine
