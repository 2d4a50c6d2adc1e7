#!/usr/bin/env bash
# The aws CLI (from PyPI if missing) against `exclaved dev`: make a bucket, copy a 100 MiB
# file up and down with equal SHA-256, list, delete; then restart and find the object again.
# Prints "test result: ok. N passed; 0 failed; ..." so ./check counts it with the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

aws_cli() {
    if command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then
        echo aws
        return
    fi
    python3 -m venv "$work/venv" >/dev/null 2>&1 \
        && "$work/venv/bin/pip" install --quiet awscli >/dev/null 2>&1 \
        && { echo "$work/venv/bin/aws"; return; }
    python3 -m pip install --quiet --user awscli >/dev/null 2>&1 \
        || python3 -m pip install --quiet --user --break-system-packages awscli >/dev/null
    echo "$(python3 -m site --user-base)/bin/aws"
}
AWS=$(aws_cli)
"$AWS" --version

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
exclaved=${EXCLAVED:-${CARGO_TARGET_DIR:-target}/debug/exclaved}

start() {
    "$exclaved" dev --dir "$work/dev" --listen "127.0.0.1:$port" >"$work/dev.out" 2>>"$work/dev.log" &
    pid=$!
    for _ in $(seq 1 300); do
        if grep -q "serving S3" "$work/dev.out" 2>/dev/null; then return; fi
        if ! kill -0 "$pid" 2>/dev/null; then cat "$work/dev.log" >&2; exit 1; fi
        sleep 0.1
    done
    echo "exclaved dev did not start" >&2
    exit 1
}
stop() {
    kill -TERM "$pid"
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then wait "$pid" || true; pid=; return; fi
        sleep 0.1
    done
    echo "exclaved dev did not stop on SIGTERM" >&2
    exit 1
}

passed=0
check() { passed=$((passed + 1)); echo "ok: $*"; }

start
grep -q "AWS_SHARED_CREDENTIALS_FILE=$work/dev/credentials" "$work/dev.out" && check "dev prints the credentials file"
export AWS_SHARED_CREDENTIALS_FILE="$work/dev/credentials" AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null
a() { timeout 300 "$AWS" --endpoint-url "$endpoint" "$@"; }

a s3 mb s3://registry
check "make a bucket"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$work/big"
a s3 cp --only-show-errors "$work/big" s3://registry/land/big.bin
a s3 cp --only-show-errors s3://registry/land/big.bin "$work/big.back"
[ "$(sha256sum <"$work/big" | cut -d' ' -f1)" = "$(sha256sum <"$work/big.back" | cut -d' ' -f1)" ]
check "100 MiB up and down with equal SHA-256"
a s3 ls s3://registry/land/ | grep -q "104857600 big.bin"
check "list"

stop
start
a s3 cp --only-show-errors s3://registry/land/big.bin "$work/big.again"
cmp -s "$work/big" "$work/big.again"
check "a second start reuses everything"

a s3 rm s3://registry/land/big.bin
if [ -n "$(a s3 ls s3://registry/land/)" ]; then echo "the deleted object still lists" >&2; exit 1; fi
a s3 rb s3://registry
if a s3 ls s3://registry >/dev/null 2>&1; then echo "the deleted bucket still lists" >&2; exit 1; fi
check "delete the object and the bucket"
stop

echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
