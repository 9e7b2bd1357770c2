#!/bin/sh
# Environment speed side by side with the Python peers; see run_env_peers.py.
#   benches/peers/run_env_peers.sh [--seconds 2] [--json]
exec python3 "$(dirname "$0")/run_env_peers.py" "$@"
