#!/usr/bin/env bash
# The aws CLI (from PyPI if missing) against `exclaved dev`: make a bucket, copy a 100 MiB
# file up and down with equal SHA-256, list, list its versions, read it by version id, delete;
# then restart and find the object again. Then versioning (put-bucket-versioning, versions by
# id, a delete marker removed by its id), object lock (a COMPLIANCE version refused) and lifecycle
# (put, get, a refused rule, delete).
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
a s3 ls s3://registry/land/ | grep -c "104857600 big.bin" >/dev/null || fail "big.bin is not listed"
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

a s3api create-bucket --bucket archive >/dev/null
a s3api put-bucket-versioning --bucket archive --versioning-configuration Status=Enabled
[ "$(a s3api get-bucket-versioning --bucket archive --query Status --output text)" = Enabled ] \
    || fail "get-bucket-versioning does not say Enabled"
echo "parcel 7: A" >"$work/deed.1"
echo "parcel 7: B" >"$work/deed.2"
v1=$(a s3api put-object --bucket archive --key deed --body "$work/deed.1" --query VersionId --output text)
v2=$(a s3api put-object --bucket archive --key deed --body "$work/deed.2" --query VersionId --output text)
[ "$v1" != "$v2" ] && [ ${#v1} = 32 ] || fail "put-object version ids: $v1 $v2"
a s3api get-object --bucket archive --key deed --version-id "$v1" "$work/deed.v1" >/dev/null
cmp -s "$work/deed.1" "$work/deed.v1" || fail "get-object --version-id of the first version"
a s3 rm s3://archive/deed
out=$(a s3 cp s3://archive/deed "$work/x" 2>&1) && fail "a deleted key was served: $out"
counts=$(a s3api list-object-versions --bucket archive \
    --query '[length(Versions), length(DeleteMarkers), DeleteMarkers[0].IsLatest]' --output text)
[ "$counts" = "$(printf '2\t1\tTrue')" ] || fail "list-object-versions after the delete: $counts"
marker=$(a s3api list-object-versions --bucket archive --query 'DeleteMarkers[0].VersionId' \
    --output text)
a s3api delete-object --bucket archive --key deed --version-id "$marker" >/dev/null
a s3 cp --only-show-errors s3://archive/deed "$work/deed.back"
cmp -s "$work/deed.2" "$work/deed.back" || fail "removing the delete marker did not bring B back"
check "versioning: put-bucket-versioning, versions by id, a delete marker and its removal"

a s3api create-bucket --bucket sealed --object-lock-enabled-for-bucket >/dev/null
until=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
vs=$(a s3api put-object --bucket sealed --key deed --body "$work/deed.1" \
    --object-lock-mode COMPLIANCE --object-lock-retain-until-date "$until" \
    --query VersionId --output text)
mode=$(a s3api get-object-retention --bucket sealed --key deed --version-id "$vs" \
    --query Retention.Mode --output text)
[ "$mode" = COMPLIANCE ] || fail "get-object-retention: $mode"
out=$(a s3api delete-object --bucket sealed --key deed --version-id "$vs" \
    --bypass-governance-retention 2>&1) && fail "a COMPLIANCE version was deleted: $out"
[[ "$out" == *AccessDenied* ]] || fail "delete-object of a COMPLIANCE version: $out"
check "object lock: a COMPLIANCE version is refused deletion"

cat >"$work/lifecycle.json" <<'JSON'
{"Rules": [
  {"ID": "drafts", "Status": "Enabled", "Filter": {"Prefix": "drafts/"},
   "Expiration": {"Days": 30}},
  {"ID": "history", "Status": "Enabled", "Filter": {},
   "NoncurrentVersionExpiration": {"NoncurrentDays": 365, "NewerNoncurrentVersions": 5},
   "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}
]}
JSON
a s3api put-bucket-lifecycle-configuration --bucket archive \
    --lifecycle-configuration "file://$work/lifecycle.json"
got=$(a s3api get-bucket-lifecycle-configuration --bucket archive \
    --query 'Rules[].[ID,Expiration.Days,NoncurrentVersionExpiration.NewerNoncurrentVersions]' \
    --output text | tr '\t\n' ' ')
[ "$got" = "drafts 30 None history None 5 " ] || fail "get-bucket-lifecycle-configuration: $got"
out=$(a s3api put-bucket-lifecycle-configuration --bucket archive --lifecycle-configuration \
    '{"Rules":[{"ID":"x","Status":"Enabled","Filter":{},"Expiration":{"Days":0}}]}' 2>&1) \
    && fail "a rule of 0 days was accepted"
[[ "$out" == *InvalidArgument* ]] || fail "put-bucket-lifecycle-configuration of 0 days: $out"
a s3api delete-bucket-lifecycle --bucket archive
out=$(a s3api get-bucket-lifecycle-configuration --bucket archive 2>&1) \
    && fail "the deleted lifecycle configuration still answers: $out"
[[ "$out" == *NoSuchLifecycleConfiguration* ]] || fail "after delete-bucket-lifecycle: $out"
check "lifecycle: put, get, a refused rule, delete"

a s3 rm s3://registry/land/big.bin
if [ -n "$(a s3 ls s3://registry/land/)" ]; then fail "the deleted object still lists"; fi
a s3 rb s3://registry
out=$(a s3api head-bucket --bucket registry 2>&1) && fail "the deleted bucket still answers: $out"
[[ "$out" == *404* || "$out" == *"Not Found"* ]] || fail "head-bucket of the deleted bucket: $out"
check "delete the object and the bucket"
stop_dev

result
