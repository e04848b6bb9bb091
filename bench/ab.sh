#!/usr/bin/env bash
# Alternates two trees of Podium on one loadtest scenario, in the same
# minutes: the tree before a change (BASE) and the tree with it (NEW), run
# after run. The bench machine's speed drifts by more than a change's
# effect within the hour (docs/BENCHMARKS.md, "The send path, fourth
# round"), so a change is judged against its base run beside it, and by
# the server's CPU per packet over the load tool's, which does not change
# between the two trees.
#
#   BASE=<git revision> [NEW=<git revision>|.] [ROUNDS=3] [SCENARIO=fanout200] \
#     [OUT=bench/results/ab] bash bench/ab.sh
#
# NEW "." (the default) is the working tree as it is, uncommitted changes
# included. Every other variable goes through to bench/run.sh (RECEIVER,
# DURATION, RECEIVE_CPU, PROFILE, ...). Each run's report is
# OUT/base-N/ and OUT/new-N/; the table at the end is
# `go run ./bench/summary -cost`.
set -euo pipefail

cd "$(dirname "$0")/.."
BASE=${BASE:?set BASE to the git revision to compare with}
NEW=${NEW:-.}
ROUNDS=${ROUNDS:-3}
SCENARIO=${SCENARIO:-fanout200}
OUT=$(realpath -m "${OUT:-bench/results/ab}")
mkdir -p "$OUT"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# tree puts revision $1 (or the working tree for ".") into directory $2,
# without bench/results.
tree() {
  mkdir -p "$2"
  if [[ "$1" == "." ]]; then
    git ls-files -co --exclude-standard | grep -v '^bench/results/' | tar cf - -T - | tar xf - -C "$2"
  else
    git archive "$1" | tar xf - -C "$2" --exclude='bench/results'
  fi
}
tree "$BASE" "$work/base"
tree "$NEW" "$work/new"
echo "base: $BASE, new: $NEW; $ROUNDS rounds of $SCENARIO into $OUT"

for round in $(seq 1 "$ROUNDS"); do
  for t in base new; do
    echo "round $round: $t"
    if ! (cd "$work/$t" && OUT="$OUT/$t-$round" bash bench/run.sh "$SCENARIO") >"$OUT/$t-$round.log" 2>&1; then
      echo "the $t run failed: $OUT/$t-$round.log" >&2
      exit 1
    fi
  done
done
go run ./bench/summary -cost "$OUT"/base-*/"$SCENARIO".json "$OUT"/new-*/"$SCENARIO".json
