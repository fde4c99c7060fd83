#!/usr/bin/env bash
# The whole cohort workflow on a Slurm cluster: tile and embed in SHARDS array tasks, train one fold per task, summarise;
# each stage waits for the previous one (--dependency=afterok). Prints the job ids; `histo status DIR` shows progress.
#   scripts/slurm/cohort.sh SLIDES_DIR LABELS_CSV OUT_DIR [SHARDS=4] [FOLDS=5]
set -euo pipefail
here=$(dirname "$(realpath "$0")")
slides=${1:?slides folder}; labels=${2:?labels CSV}; out=${3:?output folder}; shards=${4:-4}; folds=${5:-5}
tile=$(sbatch --parsable --array=0-$((shards - 1)) "$here/tile.sbatch" "$slides" "$out/tiles" --mpp 0.5)
embed=$(sbatch --parsable --array=0-$((shards - 1)) --dependency=afterok:$tile "$here/embed.sbatch" "$slides" "$out/tiles" \
  "$out/features")
train=$(sbatch --parsable --array=0-$((folds - 1)) --dependency=afterok:$embed "$here/train.sbatch" "$out/features" "$labels" \
  "$out/run")
summary=$(sbatch --parsable --dependency=afterok:$train "$here/summarise.sbatch" "$out/features" "$labels" "$out/run" "$folds")
echo "tile $tile, embed $embed, train $train, summary $summary"
