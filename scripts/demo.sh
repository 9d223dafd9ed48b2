#!/usr/bin/env bash
# The main job: the whole prefkit path on data it makes itself. Sets everything up first.
#   simulate -> convert -> info -> validate -> inspect -> views/export -> arena -> back in again
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
PK=".venv/bin/prefkit"
OUT="demo-output"
rm -rf "$OUT" && mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. simulate a pairwise dataset with planted ground truth (noisy B-Pref teachers, length bias)"
$PK synth --kind pairwise --n-prompts 2000 --n-annotators 40 --judgments-per-pair 3 \
  --flip-rate 0.1 --length-bias 0.5 --seed 7 "$OUT/sim"

step "2. what is in it"
$PK info "$OUT/sim"

step "3. integrity checks"
$PK validate "$OUT/sim"

step "3b. inspect: what is wrong with it (planted: duplicates, flipped labels, a bad annotator share, length bias)"
$PK synth --kind pairwise --n-prompts 2000 --n-annotators 40 --judgments-per-pair 5 \
  --flip-rate 0.1 --length-bias 1.0 --duplicate-rate 0.02 --near-duplicate-rate 0.02 \
  --bad-annotator-fraction 0.1 --seed 8 "$OUT/messy_sim"
# an eval set that leaks: 3 of its 5 prompts are copied from the training prompts
.venv/bin/python - "$OUT" <<'PY'
import json, sys
import prefkit
from prefkit.views import prompt_text
out = sys.argv[1]
leaked = prompt_text(prefkit.load(f"{out}/messy_sim").prompts.column("messages")[:3]).to_pylist()
fresh = ["What is the capital of France?", "Write a haiku about autumn."]
json.dump([{"prompt": p} for p in leaked + fresh], open(f"{out}/eval_prompts.json", "w"))
PY
$PK inspect "$OUT/messy_sim" --embed never --against "$OUT/eval_prompts.json" \
  --html "$OUT/inspect.html" --json "$OUT/inspect.json"
.venv/bin/python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
planted = json.load(open(f"{out}/messy_sim/manifest.json"))["planted"]
found = {f["title"]: f for f in json.load(open(f"{out}/inspect.json"))["findings"]}
bad = planted["annotators"]["bad"]
print("planted vs found:")
print(f"  flipped labels  {planted['counts']['flipped'] / planted['counts']['judgments']:.1%}"
      f"  vs estimated {found['Label noise']['metrics']['flip_share']:.1%}")
flagged = found["Annotators far below the rest"]["ids"].get("annotator_id", [])
print(f"  bad annotators  {sorted(bad)}  vs flagged {sorted(flagged)}")
PY

step "3c. curate: fix what inspect found (drop the copies, the disputed items, one label per pair) and export TRL"
cat > "$OUT/curate.yaml" <<'YAML'
steps:
  - dedup: {what: prompts}
  - decontaminate: {against: EVAL}
  - drop-disputed: {min_agreement: 0.8}   # at least 4 of the 5 judges agree
  - majority: {tie: drop}
  - drop-ties
YAML
sed -i "s|EVAL|$OUT/eval_prompts.json|" "$OUT/curate.yaml"
$PK curate --recipe "$OUT/curate.yaml" "$OUT/messy_sim" "$OUT/curated" --report-dir "$OUT/curate_reports" --overwrite
$PK export "$OUT/curated" "$OUT/curated_trl.jsonl" --to trl --overwrite

step "4. export TRL training pairs: three judges per pair, majority vote, ties dropped"
$PK convert "$OUT/sim" "$OUT/pairs.jsonl" --to trl --ties drop --annotators majority
head -c 400 "$OUT/pairs.jsonl"; echo " ..."

step "5. read the TRL file back (format sniffed) into a canonical dataset"
$PK convert "$OUT/pairs.jsonl" "$OUT/pairs_ds"
$PK info "$OUT/pairs_ds"

step "6. arena battles between simulated models of known skill -> arena format"
$PK synth --kind battles --n-models 6 --n-prompts 3000 --seed 1 "$OUT/battles"
$PK convert "$OUT/battles" "$OUT/battles.jsonl" --to arena --battle-ties keep
$PK info "$OUT/battles" --json | .venv/bin/python -c 'import json,sys; i=json.load(sys.stdin); print("outcomes:", i["outcomes"]); print("models:", i["sources"])'

step "6b. the arena leaderboard of those battles, with bootstrap intervals and an HTML report"
$PK arena "$OUT/battles" --bootstrap 500 --html "$OUT/arena.html"
.venv/bin/python -c 'import json,sys; m=json.load(open(sys.argv[1]))["planted"]["models"]["skills"]; print("planted skills (the truth the leaderboard should recover):", {k: round(v) for k, v in sorted(m.items(), key=lambda kv: -kv[1])})' "$OUT/battles/manifest.json"

step "7. rankings with ties -> pairs from every ranked pair"
$PK synth --kind rankings --n-prompts 500 --responses-per-prompt 5 --seed 2 "$OUT/rankings"
$PK convert "$OUT/rankings" "$OUT/ranked_pairs.parquet" --to trl --rankings all
.venv/bin/python - "$OUT" <<'PY'
import sys
import prefkit
out = sys.argv[1]
ds = prefkit.load(f"{out}/rankings")
from collections import Counter
pairs = ds.to_pairs(rankings="all")
gaps = Counter(pairs.column("strength").to_pylist())
print(f"{ds}\n{pairs.num_rows:,} pairs from every ranked pair; by tier gap (strength):",
      dict(sorted(gaps.items())))
best = ds.to_pairs(rankings="best_vs_worst")
print(f"best_vs_worst gives {best.num_rows:,} pairs (one per ranking unless tiers tie)")
planted = ds.manifest.planted
print("planted ground truth recorded in the manifest:", ", ".join(sorted(planted)))
PY

step "8. reward model: frozen MiniLM features + a Bradley-Terry head, 5-fold CV by prompt beside the length baselines"
# texts carry the planted quality through good/bad marker sentences (text_signal 1.0)
$PK synth --kind pairwise --n-prompts 600 --beta 4 --text-signal 1.0 --seed 3 "$OUT/rm_sim"
$PK rm eval "$OUT/rm_sim" --folds 5 --cache-dir "$OUT/cache" --plot "$OUT/rm_reliability.png" --quiet
$PK rm train "$OUT/rm_sim" --out "$OUT/rm_model" --cache-dir "$OUT/cache" --quiet
# score a fresh simulated set the model never saw; the reward columns feed inspect and curate
$PK synth --kind pairwise --n-prompts 200 --beta 4 --text-signal 1.0 --seed 4 "$OUT/rm_fresh"
$PK rm score "$OUT/rm_fresh" --model "$OUT/rm_model" --out "$OUT/rm_fresh_scored" --cache-dir "$OUT/cache" --quiet
.venv/bin/python - "$OUT" <<'PY'
import sys
import numpy as np
import prefkit
j = prefkit.load(f"{sys.argv[1]}/rm_fresh_scored").judgments
agrees = np.array(j.column("reward_agrees").to_pylist(), dtype=float)
truth = np.sign(j.column("margin").to_numpy()) == np.sign(j.column("reward_margin").to_numpy())
print(f"on a fresh set: the model agrees with the judged winner on {np.nanmean(agrees):.1%}, "
      f"with the planted better response on {truth.mean():.1%}")
PY

step "8b. beyond Bradley-Terry on planted truth: cyclic preferences (GPM) and annotator groups (PAL)"
.venv/bin/python - <<'PY'
from prefkit.models.synthetic import cycles_experiment, few_shot_experiment
c = cycles_experiment(0)
print(f"held-out accuracy on rock-paper-scissors preferences: BT {c['bt']:.3f}, GPM {c['gpm']:.3f} (oracle {c['oracle']:.3f})")
for row in few_shot_experiment(ks=(0, 4, 16), seed=0):
    print(f"new annotator after k={int(row['k']):>2} of their judgments: one BT {row['bt']:.3f}, PAL {row['pal']:.3f}")
PY

step "8c. DPO learns a known reward: a tiny Llama trained on its own samples, pairs labelled by a Bradley-Terry draw on the true reward"
.venv/bin/python - <<'PY'
from prefkit.training.synthetic import known_reward_experiment
r = known_reward_experiment(seed=0)
print(f"{int(r['pairs'])} pairs; mean true reward of sampled completions: "
      f"{r['reward_before']:.3f} before DPO -> {r['reward_after']:.3f} after")
PY

step "8d. prefkit train dpo on text preference data: curriculum stages, tokenization pre-flight, reference cache"
# a tiny random causal LM with a tokenizer and chat template (the same code path as a real checkpoint)
.venv/bin/python -c 'import sys; from prefkit.training.tiny import tiny_checkpoint; tiny_checkpoint(sys.argv[1])' "$OUT/tiny_lm"
# the curated set from 3c has one majority label per pair with its vote share as strength
$PK curate curriculum "$OUT/curated" "$OUT/dpo_staged" --by strength --stages 2 --order --overwrite
cat > "$OUT/dpo.yaml" <<YAML
model: $OUT/tiny_lm
data: $OUT/dpo_staged
output_dir: $OUT/dpo
loss: dpo
loss_params: {beta: 0.1}
lr: 0.001
batch_size: 8
max_prompt_length: 128
max_completion_length: 512
eval_fraction: 0.1
on_problem: fix      # cut completions get their EOS back; empty ones are dropped
ref_cache_dir: $OUT/cache/reference
YAML
$PK train dpo --config "$OUT/dpo.yaml" --quiet
# the same data and model again: the reference log-probs come from the cache (no reference pass)
$PK train dpo --config "$OUT/dpo.yaml" --max-steps 2 --output-dir "$OUT/dpo_again" --json \
  | .venv/bin/python -c 'import json,sys; print("second run, reference log-probs from:", json.load(sys.stdin)["reference"])'

step "9. bad input: a clean error naming file, line and field (exit 2), or quarantine"
printf '{"prompt": "hi", "chosen": "hello", "rejected": "go away"}\n{"prompt": "x", "chosen": 3}\n' > "$OUT/messy.jsonl"
set +e; $PK convert "$OUT/messy.jsonl" "$OUT/messy_ds"; echo "exit status: $?"; set -e
$PK convert "$OUT/messy.jsonl" "$OUT/messy_ds" --on-error quarantine

step "done: outputs in $OUT/"
