#!/usr/bin/env bash
# Issue 18: real clients with an access key limited to one bucket. `exclave key create` makes
# the key, `exclave bucket allow --owner` gives it the bucket `land`; the cluster's own key
# fills a bucket `business`. With the limited key, the aws CLI, boto3, rclone and s3cmd each
# create, write, list and read `land`, see only `land` in the bucket list, and are refused
# `business` (read, list, write, delete, copy out of it), which is left as it was.
# Installs what is missing: the aws CLI and boto3 from PyPI (lib.sh), rclone from Debian,
# s3cmd from PyPI.
# Prints "test result: ok. N passed; 0 failed; ..." so ./check counts it with the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."

. tests/cli/lib.sh
if ! command -v rclone >/dev/null 2>&1; then
    SUDO=$(command -v sudo || true)
    $SUDO apt-get update -q >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rclone >/dev/null
fi
S3CMD=$(command -v s3cmd || true)
if [ -z "$S3CMD" ]; then
    python3 -m venv "$work/s3cmd-venv" >/dev/null
    "$work/s3cmd-venv/bin/pip" install --quiet s3cmd >/dev/null
    S3CMD="$work/s3cmd-venv/bin/s3cmd"
fi
"$S3CMD" --version
exclave=$(realpath "${CARGO_TARGET_DIR:-target}/debug/exclave")

port=$(free_port)
start_dev "$work/dev" "$port"
endpoint="http://127.0.0.1:$port"
cfg="$work/dev/gateway/gateway.toml"

# Plain HTTP on loopback: no CA bundle from the machine's environment (rclone refuses one
# for plain HTTP).
unset AWS_CA_BUNDLE REQUESTS_CA_BUNDLE
# The cluster's own key fills `business`.
export AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE="$work/aws-config"
printf '[default]\ns3 =\n    addressing_style = path\n' >"$AWS_CONFIG_FILE"
root() { AWS_SHARED_CREDENTIALS_FILE="$work/dev/credentials" timeout 300 "$AWS" --endpoint-url "$endpoint" "$@"; }
root s3 mb s3://business >/dev/null
printf 'firm 1: ACME\n' >"$work/firm"
root s3 cp --only-show-errors "$work/firm" s3://business/firms/1

# The limited key.
json=$("$exclave" --config "$cfg" --json key create --name land-app)
access=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["access_key_id"])' "$json")
secret=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["secret_access_key"])' "$json")
"$exclave" --config "$cfg" bucket allow --key land-app --bucket land --owner >/dev/null
"$exclave" --config "$cfg" bucket info --bucket land | grep -c "land-app (owner)" >/dev/null \
    || fail "bucket info does not show the grant"
check "exclave key create and bucket allow"

printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$access" "$secret" >"$work/land-credentials"
a() { AWS_SHARED_CREDENTIALS_FILE="$work/land-credentials" timeout 300 "$AWS" --endpoint-url "$endpoint" "$@"; }
refused() { # refused WHAT COMMAND...: the command fails, naming AccessDenied
    local what=$1
    shift
    local out
    if out=$("$@" 2>&1); then fail "$what was allowed: $out"; fi
    [[ "$out" == *AccessDenied* || "$out" == *403* || "$out" == *Forbidden* ]] || fail "$what failed otherwise: $out"
}

# The aws CLI.
a s3 mb s3://land >/dev/null
head -c $((6 * 1024 * 1024)) /dev/urandom >"$work/big"
a s3 cp --only-show-errors "$work/big" s3://land/deeds/big.bin
a s3 cp --only-show-errors s3://land/deeds/big.bin "$work/big.back"
cmp -s "$work/big" "$work/big.back" || fail "the aws CLI read back other bytes"
[ "$(a s3 ls | awk '{print $3}')" = land ] || fail "the aws CLI lists other buckets: $(a s3 ls)"
refused "aws s3 ls s3://business" a s3 ls s3://business
refused "aws s3 cp from business" a s3 cp s3://business/firms/1 "$work/stolen"
refused "aws s3 cp into business" a s3 cp "$work/big" s3://business/firms/2
refused "aws s3 rm in business" a s3 rm s3://business/firms/1
refused "aws s3 cp business to land" a s3 cp s3://business/firms/1 s3://land/stolen
refused "aws s3 mb of another bucket" a s3 mb s3://population
check "aws CLI: the key's bucket made, written, listed and read; business refused every way"

# boto3.
AWS_SHARED_CREDENTIALS_FILE="$work/land-credentials" "$PY" - "$endpoint" <<'EOF'
import sys
import boto3, botocore.config, botocore.exceptions
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                                retries={"max_attempts": 1}))
s3.put_object(Bucket="land", Key="boto/1", Body=b"parcel 7/12")
assert s3.get_object(Bucket="land", Key="boto/1")["Body"].read() == b"parcel 7/12"
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
assert names == ["land"], names
for name, call in [
    ("get", lambda: s3.get_object(Bucket="business", Key="firms/1")),
    ("head", lambda: s3.head_object(Bucket="business", Key="firms/1")),
    ("list", lambda: s3.list_objects_v2(Bucket="business")),
    ("versions", lambda: s3.list_object_versions(Bucket="business")),
    ("put", lambda: s3.put_object(Bucket="business", Key="firms/1", Body=b"x")),
    ("delete", lambda: s3.delete_object(Bucket="business", Key="firms/1")),
    ("delete_objects", lambda: s3.delete_objects(Bucket="business", Delete={"Objects": [{"Key": "firms/1"}]})),
    ("copy out", lambda: s3.copy_object(Bucket="land", Key="stolen", CopySource={"Bucket": "business", "Key": "firms/1"})),
    ("presigned", lambda: __import__("urllib.request").request.urlopen(
        s3.generate_presigned_url("get_object", Params={"Bucket": "business", "Key": "firms/1"}))),
]:
    try:
        call()
    except botocore.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, (name, e.response)
    except Exception as e:  # urllib's HTTPError for the presigned URL
        assert getattr(e, "code", None) == 403, (name, e)
    else:
        raise SystemExit(f"boto3 {name} in business was allowed")
EOF
check "boto3: put, get, list in the key's bucket; business refused (presigned too)"

# boto3 with the bucket's own settings: SSE-C, tags, CORS, a policy.
AWS_SHARED_CREDENTIALS_FILE="$work/land-credentials" "$PY" - "$endpoint" <<'EOF'
import json, os, sys
import boto3, botocore.config, botocore.exceptions
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                                retries={"max_attempts": 1}))
def status(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]
    return 200
key, other = os.urandom(32), os.urandom(32)
s3.put_object(Bucket="land", Key="sealed", Body=b"sealed deed", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
got = s3.get_object(Bucket="land", Key="sealed", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
assert got["Body"].read() == b"sealed deed"
assert got["SSECustomerAlgorithm"] == "AES256"
assert status(lambda: s3.get_object(Bucket="land", Key="sealed")) == 400
assert status(lambda: s3.get_object(Bucket="land", Key="sealed", SSECustomerAlgorithm="AES256", SSECustomerKey=other)) == 403
s3.put_object(Bucket="land", Key="tagged", Body=b"t", Tagging="class=deed&office=north")
assert s3.get_object_tagging(Bucket="land", Key="tagged")["TagSet"] == [
    {"Key": "class", "Value": "deed"}, {"Key": "office", "Value": "north"}]
s3.put_object_tagging(Bucket="land", Key="tagged", Tagging={"TagSet": [{"Key": "class", "Value": "final"}]})
assert s3.get_object(Bucket="land", Key="tagged")["TagCount"] == 1
s3.put_bucket_tagging(Bucket="land", Tagging={"TagSet": [{"Key": "registry", "Value": "land"}]})
assert s3.get_bucket_tagging(Bucket="land")["TagSet"] == [{"Key": "registry", "Value": "land"}]
s3.put_bucket_cors(Bucket="land", CORSConfiguration={"CORSRules": [
    {"AllowedOrigins": ["https://portal.example"], "AllowedMethods": ["GET", "PUT"], "MaxAgeSeconds": 60}]})
assert s3.get_bucket_cors(Bucket="land")["CORSRules"][0]["AllowedMethods"] == ["GET", "PUT"]
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
          "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::land/tagged"}]}
s3.put_bucket_policy(Bucket="land", Policy=json.dumps(policy))
assert status(lambda: s3.delete_object(Bucket="land", Key="tagged")) == 403
assert status(lambda: s3.put_bucket_policy(Bucket="land", Policy='{"Statement": "no"}')) == 400
s3.delete_bucket_policy(Bucket="land")
s3.delete_object(Bucket="land", Key="tagged")
EOF
check "boto3: SSE-C, object and bucket tags, CORS and a bucket policy in the key's bucket"

# rclone.
cat >"$work/rclone.conf" <<EOF
[ex]
type = s3
provider = Other
access_key_id = $access
secret_access_key = $secret
endpoint = $endpoint
region = us-east-1
force_path_style = true
EOF
export RCLONE_CONFIG="$work/rclone.conf"
r() { timeout 300 rclone --retries 1 --low-level-retries 1 "$@"; }
mkdir -p "$work/tree/deeds"
for i in 1 2 3; do head -c $((i * 70000)) /dev/urandom >"$work/tree/deeds/deed-$i"; done
r copy "$work/tree" ex:land/rclone
r check "$work/tree" ex:land/rclone >/dev/null 2>&1 || fail "rclone check found differences"
[ "$(r lsd ex: | awk '{print $NF}')" = land ] || fail "rclone lists other buckets: $(r lsd ex:)"
refused "rclone ls business" r ls ex:business
refused "rclone copy from business" r copy ex:business "$work/stolen-tree"
r purge ex:land/rclone
[ -z "$(r lsf ex:land/rclone 2>/dev/null)" ] || fail "rclone purge left files"
# A whole bucket purged (rclone asks GetBucketVersioning first), the key owning it.
"$exclave" --config "$cfg" bucket allow --key land-app --bucket land-scratch --owner >/dev/null
r copy "$work/tree" ex:land-scratch/t
r purge ex:land-scratch
if r lsd ex: | grep -c land-scratch >/dev/null; then fail "rclone purge left the bucket"; fi
check "rclone: copy, check, list, purge (a directory, and a whole bucket) in the key's buckets; business refused"

# s3cmd.
cat >"$work/s3cfg" <<EOF
[default]
access_key = $access
secret_key = $secret
host_base = 127.0.0.1:$port
host_bucket = 127.0.0.1:$port
use_https = False
bucket_location = us-east-1
signature_v2 = False
EOF
s() { timeout 300 "$S3CMD" --config="$work/s3cfg" "$@"; }
s put --quiet "$work/firm" s3://land/s3cmd/firm >/dev/null
s get --quiet --force s3://land/s3cmd/firm "$work/firm.back" >/dev/null
cmp -s "$work/firm" "$work/firm.back" || fail "s3cmd read back other bytes"
s ls | grep -c "s3://land" >/dev/null || fail "s3cmd does not list land"
if s ls | grep -c "s3://business" >/dev/null; then fail "s3cmd lists business"; fi
refused "s3cmd ls business" s ls s3://business
refused "s3cmd get from business" s get --force s3://business/firms/1 "$work/stolen"
refused "s3cmd put into business" s put "$work/firm" s3://business/firms/2
check "s3cmd: put, get, list in the key's bucket; business refused"

# business is as it was.
root s3 cp --only-show-errors s3://business/firms/1 "$work/firm.after"
cmp -s "$work/firm" "$work/firm.after" || fail "business changed"
[ "$(root s3 ls s3://business/firms/ | wc -l)" = 1 ] || fail "business holds other files: $(root s3 ls s3://business/firms/)"
check "business is unchanged"

stop_dev
result
