#!/usr/bin/env bash
# The long fuzz run of issue 17 §3: schemathesis with every check and the
# stateful phase against a fresh `rl-lab serve`, from its /openapi.json.
# tests/fuzz.rs is the short, CI-sized version of the same run.
#
# Run with:  benches/fuzz.sh --max-examples 500 [--seed N] [more schemathesis flags]
#
# Needs schemathesis (tests/requirements.txt): it is taken from
# RL_LAB_TEST_PYTHON's environment, else target/test-venv (./scripts/test
# makes it). Prints schemathesis' report; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${RL_LAB_TEST_PYTHON:-$PWD/target/test-venv/bin/python}
schemathesis=$(dirname "$python")/schemathesis
if [ ! -x "$schemathesis" ]; then
    echo "no schemathesis at $schemathesis: run ./scripts/test once, or set RL_LAB_TEST_PYTHON" >&2
    exit 1
fi
# With the test build's features: the holder below is a test agent.
cargo build --quiet --bin rl-lab --test fuzz
data=$(mktemp -d)
log="$data/serve.log"
RL_LAB_TEST_AGENTS=1 target/debug/rl-lab serve --addr 127.0.0.1:0 --data "$data/lab" --max-concurrent-runs 1 >"$log" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    base=$(sed -n 's/^listening on //p' "$log")
    [ -n "$base" ] && break
    sleep 0.1
done
[ -n "$base" ] || { echo "the server did not start" >&2; exit 1; }
# A run that sleeps through its steps holds the only local worker, so that
# the runs the fuzzer launches queue instead of training: the fuzz is of the
# HTTP API, and a tabular run at full speed would write metrics as fast as
# the disk takes.
curl -sf -X POST -H 'Content-Type: application/json' "$base/v1/runs" -d '{
  "env": {"id": "CartPole-v1"},
  "agent": {"id": "test/panic", "config": {"sleep_ms_per_step": 100}},
  "budget": {"steps": 1000000000}, "eval": {"episodes": 0}}' >/dev/null
work=$(mktemp -d -p "$data")
began=$(date +%s)
status=0
(cd "$work" && NO_COLOR=1 "$schemathesis" --config-file "$OLDPWD/schemathesis.toml" \
    run "$base/openapi.json" --checks all --exclude-path /v1/shutdown/ \
    --generation-database none "$@") || status=$?
echo "fuzz: $(( $(date +%s) - began )) s, schemathesis exit $status"
exit "$status"
