#!/usr/bin/env bash
# The aws CLI (from PyPI if missing) against `exclaved dev`: make a bucket, copy a 100 MiB
# file up and down with equal SHA-256, list, list its versions, read it by version id, delete;
# then restart and find the object again.
# Prints "test result: ok. N passed; 0 failed; ..." so ./check counts it with the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
"$AWS" --version

port=$(free_port)
endpoint="http://127.0.0.1:$port"

start_dev "$work/dev" "$port"
grep -q "AWS_SHARED_CREDENTIALS_FILE=$work/dev/credentials" "$work/dev.out" \
    || fail "the banner does not name the credentials file: $(cat "$work/dev.out")"
check "dev prints the credentials file"
export AWS_SHARED_CREDENTIALS_FILE="$work/dev/credentials" AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null
a() { timeout 300 "$AWS" --endpoint-url "$endpoint" "$@"; }

a s3 mb s3://registry
check "make a bucket"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$work/big"
a s3 cp --only-show-errors "$work/big" s3://registry/land/big.bin
a s3 cp --only-show-errors s3://registry/land/big.bin "$work/big.back"
[ "$(sha256sum <"$work/big" | cut -d' ' -f1)" = "$(sha256sum <"$work/big.back" | cut -d' ' -f1)" ] \
    || fail "the 100 MiB object came back with other bytes"
check "100 MiB up and down with equal SHA-256"
a s3 ls s3://registry/land/ | grep -q "104857600 big.bin" || fail "big.bin is not listed"
check "list"

stop_dev
start_dev "$work/dev" "$port"
a s3 cp --only-show-errors s3://registry/land/big.bin "$work/big.again"
cmp -s "$work/big" "$work/big.again" || fail "after a restart the object came back with other bytes"
check "a second start reuses everything"

versions=$(a s3api list-object-versions --bucket registry --prefix land/ \
    --query 'Versions[].[Key,VersionId,IsLatest,Size]' --output text)
[ "$versions" = "$(printf 'land/big.bin\tnull\tTrue\t104857600')" ] \
    || fail "list-object-versions: $versions"
a s3api get-object --bucket registry --key land/big.bin --version-id null --range bytes=0-1023 \
    "$work/first.kib" >/dev/null
cmp -s "$work/first.kib" <(head -c 1024 "$work/big") || fail "get-object --version-id null"
out=$(a s3api get-object --bucket registry --key land/big.bin --version-id nonsense \
    "$work/x" 2>&1) && fail "a version id that names nothing was served: $out"
[[ "$out" == *InvalidArgument* || "$out" == *400* ]] || fail "get-object --version-id nonsense: $out"
check "list-object-versions and get-object --version-id"

a s3 rm s3://registry/land/big.bin
if [ -n "$(a s3 ls s3://registry/land/)" ]; then fail "the deleted object still lists"; fi
a s3 rb s3://registry
out=$(a s3api head-bucket --bucket registry 2>&1) && fail "the deleted bucket still answers: $out"
[[ "$out" == *404* || "$out" == *"Not Found"* ]] || fail "head-bucket of the deleted bucket: $out"
check "delete the object and the bucket"
stop_dev

result
