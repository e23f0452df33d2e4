#!/usr/bin/env bash
# Template: train on every worker of a Cloud TPU pod slice. JAX finds the other workers by itself
# (--distributed calls jax.distributed.initialize() with TPU auto-detection); process 0 writes logs.
#
#   TPU=my-v4-32 ZONE=us-central2-b WORKDIR=gs://my-bucket/runs/ssgrl_coco CONFIG=configs/baseline_coco.py \
#     bash launch/tpu_pod.sh --config.batch_size=256
#
# The workdir must be shared by all workers (a GCS bucket); datasets are read from TFDS_DATA_DIR.
set -euo pipefail
: "${TPU:?set TPU to the pod slice name}" "${ZONE:?set ZONE}" "${WORKDIR:?set WORKDIR (shared, e.g. gs://...)}"
CONFIG="${CONFIG:-configs/baseline_coco.py}"
REPO="${REPO:-~/jaxgraphs}"
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="
  cd $REPO && pip install -q -e '.[tpu]' &&
  TFDS_DATA_DIR=${TFDS_DATA_DIR:-gs://my-bucket/tensorflow_datasets} \
  python -m jaxgraphs.main --distributed --config=$CONFIG --workdir=$WORKDIR $*"
