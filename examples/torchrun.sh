#!/usr/bin/env bash
# Multi-node training with torchrun: run this script once on every node.
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0.example MASTER_PORT=29500 GPUS_PER_NODE=4 \
#       bash examples/torchrun.sh configs/dcgan_digits.yaml
#
# NODE_RANK is 0 on the node whose address is MASTER_ADDR and 1, 2, ... on the others.
# torchrun starts one process per GPU and sets RANK, WORLD_SIZE and LOCAL_RANK; Lightning
# reads them, and the CLI turns `--trainer.strategy ddp` into gan-lightning's GAN DDP.
# On one machine, two "nodes" of one CPU process each (what the test suite runs):
#   NNODES=2 NODE_RANK=0 GPUS_PER_NODE=1 ACCELERATOR=cpu bash examples/torchrun.sh ... &
#   NNODES=2 NODE_RANK=1 GPUS_PER_NODE=1 ACCELERATOR=cpu bash examples/torchrun.sh ...
set -euo pipefail

CONFIG=${1:-configs/dcgan_digits.yaml}
shift || true
NNODES=${NNODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-1}

torchrun \
    --nnodes "$NNODES" --nproc_per_node "$GPUS_PER_NODE" --node_rank "${NODE_RANK:?set NODE_RANK}" \
    --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
    -m gan_lightning.cli fit --config "$CONFIG" \
    --trainer.accelerator "${ACCELERATOR:-gpu}" --trainer.strategy ddp \
    --trainer.num_nodes "$NNODES" --trainer.devices "$GPUS_PER_NODE" "$@"
