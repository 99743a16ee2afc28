#!/usr/bin/env bash
# How the CIFAR-10 ViT bases were made on one GPU: a pretraining recipe for as many epochs as fit a fixed
# wall-clock budget (measured on 3 calibration epochs), optionally beside a second augmentation variant.
#
#   recipes/gpu/pretrain_vit_cifar10.sh RECIPE DATA_DIR OUT_DIR [BUDGET_SECONDS]
#
# Stage 1 (recipes/pretrain_vit_cifar10.yaml) ran with MIXUP=1: the recipe beside the same plus mixup or
# cutmix per batch (the recipe's variant measured better); stage 2 (recipes/pretrain_vit_cifar10_stage2.yaml)
# alone. DATA_DIR holds CIFAR-10's train.parquet and test.parquet. The runs share the machine's CPUs as
# DataLoader workers. Each finished run comes back as OUT_DIR/<name>.tgz (no checkpoints), the logs as
# OUT_DIR/logs.tgz. DRY=1 trains on 20 photos per class, for a check on a CPU.
set -euo pipefail
recipe=$1 data=$2 out=$3 budget=${4:-480}
start=$(date +%s)
name=$(basename "$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["output_dir"])' "$recipe")")
declare -A variants=([$name]="")
[[ ${MIXUP:-0} == 1 ]] && variants[$name-mix]="model.options.augment.mixup_alpha=0.8 model.options.augment.cutmix_alpha=1.0 train.label_smoothing=0.0"
workers=$(( ($(nproc) - 2) / ${#variants[@]} )); (( workers < 1 )) && workers=1
common=("data.data_files.train=$data/train.parquet" "data.data_files.test=$data/test.parquet"
        "train.num_workers=$workers" "train.threads=2")
[[ ${DRY:-0} == 1 ]] && common+=("data.train_samples_per_class=20")

mkdir -p "$out" /tmp/logs /tmp/cal /tmp/runs
export PYTHONUNBUFFERED=1  # the time stamps are those of the lines printed
trap 'tar czf "$out/logs.tgz" -C /tmp logs' EXIT  # what the runs printed, in one file whatever happens
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }
calibration=$(date +%s.%N)
# Calibration: every variant, 3 epochs, side by side as in the real runs; stdout lines time-stamped.
for v in "${!variants[@]}"; do
    # shellcheck disable=SC2086 (a variant's overrides are words)
    (tlhub run "$recipe" "${common[@]}" ${variants[$v]} train.epochs=3 output_dir=/tmp/cal/$v --overwrite \
        2>"/tmp/logs/cal-$v.err" | stamp >"/tmp/logs/cal-$v.log") &
done
wait
epochs=$(python3 - "$start" "$budget" "$calibration" /tmp/logs/cal-*.log <<'PY'
import sys, time
start, budget, calibration = (float(a) for a in sys.argv[1:4])
per_epoch, finish, startup = 0.0, 0.0, 0.0  # an epoch whole (training, validation, checkpoint); after the last
for log in sys.argv[4:]:
    lines = [line.split(" ", 1) for line in open(log)]
    ends = [float(t) for t, text in lines if text.startswith("epoch ") and "train loss" in text]
    per_epoch = max(per_epoch, ends[2] - ends[1])
    finish = max(finish, float(lines[-1][0]) - ends[2])
    startup = max(startup, ends[0] - calibration - (ends[2] - ends[1]))
left = budget - (time.time() - start) - startup - finish
print(max(3, min(300, int(0.92 * left / per_epoch))))
PY
)
echo "calibrated: $epochs epochs in the $budget s budget" | tee "$out/epochs.txt"
for v in "${!variants[@]}"; do
    # shellcheck disable=SC2086
    tlhub run "$recipe" "${common[@]}" ${variants[$v]} train.epochs="$epochs" output_dir=/tmp/runs/$v --overwrite \
        >"/tmp/logs/$v.log" 2>&1 &
done
wait
for v in "${!variants[@]}"; do
    if [[ -f /tmp/runs/$v/run.json ]]; then tar czf "$out/$v.tgz" -C "/tmp/runs/$v" --exclude=checkpoints .; fi
done
ls -la "$out"
