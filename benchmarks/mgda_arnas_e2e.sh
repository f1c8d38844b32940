#!/usr/bin/env bash
# ARNAS end to end on a CPU at a tiny size (issue 18): differentiable search -> robustnas train
# (1 epoch, PGD-AT) -> robustnas evaluate, each step the real command. Writes
# docs/results/mgda-arnas-e2e.md with the commands, their printouts and wall times.
#
#   bash benchmarks/mgda_arnas_e2e.sh [OUT]       # about 10 minutes on one core
# One thread (OMP_NUM_THREADS=1): on a machine busy with other jobs, a second OpenMP thread per
# process oversubscribes the cores and makes every step many times slower.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/mgda-arnas-e2e}
DATA=../shared/data/cifar10/cifar10-jpeg.zip
ROBUSTNAS=${ROBUSTNAS:-.venv/bin/robustnas}
REPORT=docs/results/mgda-arnas-e2e.md
rm -rf "$OUT"
mkdir -p "$OUT"

search=("$ROBUSTNAS" search --space arnas --dataset cifar10 --data "$DATA" --strategy mgda --seed 0 --batch-size 16
        --strategy-option channels=8 --strategy-option layers=5 --strategy-option per_class=10
        --strategy-option epochs=2 --out "$OUT/search")
train=("$ROBUSTNAS" train --space arnas --arch "$OUT/search/best_genotype.json" --dataset cifar10 --data "$DATA"
       --adversarial pgd --epochs 1 --batch-size 32 --holdout 32 --limit 64 --seed 0 --out "$OUT/train")
evaluate=("$ROBUSTNAS" evaluate --checkpoint "$OUT/train" --suite clean,fgsm,pgd20 --n 32 --batch-size 32)

run() {  # run a command, append it, its printout and its wall time to the report
    local start=$SECONDS
    "$@" > "$OUT/printout.txt" 2> "$OUT/stderr.txt"
    {
        echo '```'
        echo "\$ ${*/#$ROBUSTNAS/robustnas}"
        cat "$OUT/printout.txt"
        echo '```'
        printf 'wall %d s\n\n' "$((SECONDS - start))"
    } >> "$REPORT.partial"
}

{
    echo "# ARNAS end to end: differentiable search -> train -> evaluate (issue 18)"
    echo
    echo "Command: \`bash benchmarks/mgda_arnas_e2e.sh\` on this machine's 2 CPU cores, $(date -u +%Y-%m-%d)."
    echo "A tiny search (ARNAS supernet C=8, 5 cells: accurate, reduce, accurate, reduce, robust; 100 JPEG"
    echo "CIFAR-10 images, batch 16, 2 epochs, every other setting ARNAS's) writes best_genotype.json;"
    echo "\`robustnas train\` trains that genotype at ARNAS's evaluation size (C=64, 20 cells) for one PGD-AT"
    echo "epoch on 64 images; \`robustnas evaluate\` attacks it on 32 test images. One thread per command."
    echo "Sizes this small only show that the three commands fit together; the accuracies mean nothing."
    echo
} > "$REPORT.partial"
run "${search[@]}"
run "${train[@]}"
run "${evaluate[@]}"
mv "$REPORT.partial" "$REPORT"
cat "$REPORT"
