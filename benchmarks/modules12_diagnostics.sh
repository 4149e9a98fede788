#!/bin/bash
# Modules 1-2 before/after (docs/method-notes.md, "Modules 1-2 at laptop scale"): the earlier defaults
# and each change in turn, on both built-in benchmarks, seeds 0-2; one folder per run
# with metrics.json and the two pictures. Usage: benchmarks/modules12_diagnostics.sh [OUT]
set -euo pipefail
OUT=${1:-modules12}
OLD="--set module1.epochs=4 --set module1.iters_per_epoch=25 --set encoder_adapt.epochs=0 --set module2.epochs=6 --set module2.anchor_weight=1.0"
FONTS="--set data.source=fonts --set data.teacher_domains=[printed] --set data.student_domain=handwritten --set data.train_per_class=15"
for seed in 0 1 2; do
  augkd diagnose $OLD --set seed=$seed --out "$OUT/digits_before_s$seed"
  augkd diagnose $OLD $FONTS --set seed=$seed --out "$OUT/fonts_before_s$seed"
done
augkd diagnose --set encoder_adapt.epochs=0 --set module2.epochs=6 --set module2.anchor_weight=1.0 --out "$OUT/digits_m1_1000"
augkd diagnose --set module2.epochs=6 --set module2.anchor_weight=1.0 --out "$OUT/digits_m1_adapt"
augkd diagnose --set module2.anchor_weight=1.0 --out "$OUT/digits_m1_adapt_m2e60_w1"
for seed in 0 1 2; do
  augkd diagnose --set seed=$seed --out "$OUT/digits_after_s$seed"
  augkd diagnose $FONTS --set seed=$seed --out "$OUT/fonts_after_s$seed"
done
