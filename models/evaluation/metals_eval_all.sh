#!/bin/bash
# Card numbers of one metals candidate (models/metals-emt.md): bash models/evaluation/metals_eval_all.sh MODEL TAG
# Writes runs/v5/metals-v5/{dimer,sparse-test,eval,props}-TAG.json (+ .log); then metals_compare.py TAG.
set -e
cd "$(dirname "$0")/../.."
M=$1; T=$2; D=runs/v5/metals-v5; E=models/evaluation
mkdir -p $D
export OMP_NUM_THREADS=1
nice -n 19 .venv/bin/python $E/metals_dimer_err.py $M $D/dimer-$T.json > $D/dimer-$T.log 2>&1
nice -n 19 .venv/bin/python $E/metals_subsets.py $E/splits/emt-v5-sparse.yaml $M $D/sparse-test-$T.json > /dev/null 2>&1
nice -n 19 .venv/bin/python $E/metals_eval.py $M $D/eval-$T.json > $D/eval-$T.log 2>&1
nice -n 19 .venv/bin/python $E/metals_props.py $M $D/props-$T.json Cu,Al,Au,Ni,Ag,Pd,Pt > $D/props-$T.log 2>&1
echo done $T
