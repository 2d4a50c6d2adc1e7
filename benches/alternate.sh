#!/usr/bin/env bash
# Before and after, alternated: the load tool (benches/load.rs) against `exclaved dev` from two
# builds in turn, each round on a fresh dev directory, so that the machine's drift falls on both
# alike. Prints the load tool's table rows, each prefixed with the round and the build's name.
#
#   git worktree add /tmp/before <commit>               # the build to compare against
#   (cd /tmp/before && CARGO_TARGET_DIR="$OLDPWD/target" cargo build --release --bin exclaved)
#   cp target/release/exclaved /tmp/exclaved-before     # (one target directory, shared)
#   cargo build --release --bin exclaved && cargo bench --bench load --no-run
#   bash benches/alternate.sh /tmp/exclaved-before target/release/exclaved -- \
#       --streams 1 --mib 1 --secs 20 --in-flight 32
#
# ALTERNATE_ROUNDS (3) rounds; everything after `--` goes to the load tool (one round each).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 EXCLAVED_A EXCLAVED_B [-- LOAD_ARGS...]" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2")
shift 2
[ "${1:-}" = "--" ] && shift
load=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/load-* 2>/dev/null | grep -v '\.d$' | head -1)
[ -x "$load" ] || { echo "no load bench binary: cargo bench --bench load --no-run" >&2; exit 2; }

. tests/cli/lib.sh   # the work directory and its cleanup, free_port, start_dev
port=$(free_port)

for round in $(seq 1 "${ALTERNATE_ROUNDS:-3}"); do
    for bin in "$a" "$b"; do
        rm -rf "$work/dev"
        exclaved=$bin start_dev "$work/dev" "$port"
        key=$(sed -n 's/^aws_access_key_id *= *//p' "$work/dev/credentials")
        secret=$(sed -n 's/^aws_secret_access_key *= *//p' "$work/dev/credentials")
        timeout 1200 "$load" --endpoint "http://127.0.0.1:$port" --access-key "$key" \
            --secret-key "$secret" --pid "$pid" --rounds 1 "$@" 2>&1 \
            | grep '^| [^-m]' | sed "s#^#$round $bin #"
        stop_dev
    done
done
