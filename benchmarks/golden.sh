#!/bin/bash
# Golden outputs of the CLI (issue 17: recorded before the spaces became plug-ins, compared after).
# Usage: bash benchmarks/golden.sh OUT  (with the venv active), then
#        python benchmarks/golden_compare.py BEFORE AFTER   (exit 1 when any file differs)
set -e
OUT=$1; rm -rf "$OUT"; mkdir -p "$OUT"
R=robustnas
export OMP_NUM_THREADS=2
# arch show / convert / sample
for s in nb201 darts arnas; do
  $R arch sample --space $s -n 4 --seed 7 > $OUT/sample-$s.txt
  head -1 $OUT/sample-$s.txt > $OUT/first-$s.txt
  $R arch show --space $s "$(head -1 $OUT/sample-$s.txt)" --json > $OUT/show-$s.json
  $R arch show --space $s "$(head -1 $OUT/sample-$s.txt)" > $OUT/show-$s.txt
  $R arch convert --space $s "$(head -1 $OUT/sample-$s.txt)" --to json > $OUT/convert-$s.json
  $R arch convert --space $s "$(head -1 $OUT/sample-$s.txt)" --to string > $OUT/convert-$s.str
done
$R arch sample --space nb201 -n 5 --seed 3 --unique > $OUT/sample-nb201-unique.txt
$R arch convert --space nb201 "$(head -1 $OUT/sample-nb201.txt)" --to index > $OUT/convert-nb201.index
$R arch convert --space nb201 "$(head -1 $OUT/sample-nb201.txt)" --to tuple > $OUT/convert-nb201.tuple
$R arch show --space darts DARTS_V2 --json > $OUT/show-darts-v2.json
$R arch show --space arnas ARNAS --json > $OUT/show-arnas-published.json
# score: NB201 all cheap + croze; DARTS/ARNAS cheap proxies on 2 archs, croze on 1
$R score --space nb201 --archs sample:6 --proxies croze,synflow,snip,jacov,params,flops,nwot --seed 1 --out $OUT/score-nb201 > /dev/null 2>&1
$R export $OUT/score-nb201 --out $OUT/score-nb201.csv
for s in darts arnas; do
  head -2 $OUT/sample-$s.txt > $OUT/archs-$s.txt
  $R score --space $s --archs $OUT/archs-$s.txt --proxies synflow,params,flops,grad_norm --seed 1 --out $OUT/score-$s > /dev/null 2>&1
  $R export $OUT/score-$s --out $OUT/score-$s.csv
  head -1 $OUT/sample-$s.txt > $OUT/archs1-$s.txt
  $R score --space $s --archs $OUT/archs1-$s.txt --proxies croze --seed 1 --out $OUT/score-croze-$s > /dev/null 2>&1
  $R export $OUT/score-croze-$s --out $OUT/score-croze-$s.csv
done
# searches
$R search --space nb201 --strategy evolution --objective synflow --budget 12 --seed 2 --out $OUT/search-nb201 > /dev/null 2>&1
$R search --space darts --strategy warmup-move --objective synflow --budget 6 --seed 2 --out $OUT/search-darts > /dev/null 2>&1
$R search --space arnas --strategy random --objective params --budget 4 --seed 2 --out $OUT/search-arnas > /dev/null 2>&1
$R search --space nb201 --strategy nsga2 --objective synflow,params --budget 10 --seed 2 --out $OUT/search-nsga2 > /dev/null 2>&1
$R demo --out $OUT/demo > $OUT/demo.stdout 2>/dev/null
