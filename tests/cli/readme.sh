#!/usr/bin/env bash
# The README's "A first session with the aws CLI" block, run the way a newcomer pastes it:
# `exclaved dev` started the README's way (its default ./exclave-dev, in the directory the
# block runs in), then the block in a shell that stops at the first failing line. Two
# substitutions only: the port (9000 may be taken on a test machine) and the directory of the
# built binaries (./check builds debug ones, the README release ones).
# Prints "test result: ok. N passed; 0 failed; ..." so ./check counts it with the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh

block=$(awk '/^## A first session with the aws CLI/ { f = 1 }
             f && /^```sh/ { b = 1; next }
             b && /^```/ { exit }
             b { print }' README.md)
[ -n "$block" ] || fail "README.md has no sh block under 'A first session with the aws CLI'"
port=$(free_port)
bin=$(dirname "$exclaved")
script=$(printf '%s\n' "$block" | sed "s#127\.0\.0\.1:9000#127.0.0.1:$port#g; s#\./target/release/#$bin/#g")

cd "$work"
start_dev ./exclave-dev "$port"
check "exclaved dev starts as the README says"
export PATH="$(dirname "$(command -v "$AWS")"):$PATH"
if ! out=$(timeout 300 bash -euo pipefail -c "$script" 2>&1); then
    printf '%s\n' "$out" >&2
    fail "the README's first session stopped at an error"
fi
printf '%s\n' "$out"
grep -q "the same bytes came back" <<<"$out" || fail "the object did not come back whole"
grep -q "7/12,Jane Roe,812" <<<"$out" || fail "the presigned GET did not return the object"
grep -q "land-registry" <<<"$out" || fail "status does not show the bucket"
grep -q "^deleted " <<<"$out" || fail "gc --wait did not collect the deleted object"
check "the README's first session runs as pasted"

# The banner's own "try" lines, as pasted, from another directory.
banner=$(sed -n '/^try (in any directory):/,/^health:/p' "$work/dev.out" | sed '1d;$d; s/^  //')
[ -n "$banner" ] || fail "the banner has no try lines: $(cat "$work/dev.out")"
mkdir -p "$work/elsewhere"
if ! out=$(cd "$work/elsewhere" && timeout 300 bash -euo pipefail -c "$banner" 2>&1); then
    printf '%s\n' "$out" >&2
    fail "the banner's try lines stopped at an error"
fi
grep -q "parcels.csv" <<<"$out" || fail "the banner's listing does not show the copied file: $out"
check "the banner's try lines run as pasted"
stop_dev
result
