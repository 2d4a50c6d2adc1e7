#!/usr/bin/env bash
# Real clients against `exclaved dev --tls`, each trusting the cluster CA from the banner and
# nothing else: the aws CLI (--ca-bundle), boto3 (verify=CA), rclone (--ca-cert). Also: plain
# HTTP to the TLS port gets no answer, a SigV2 presigned URL (the aws CLI v1 default) is refused
# naming SigV4, and a SigV4 presigned URL (s3.signature_version = s3v4) works.
# Installs what is missing: the aws CLI and boto3 from PyPI, rclone from Debian.
# Prints "test result: ok. N passed; 0 failed; ..." so ./check counts it with the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."

. tests/cli/lib.sh
if ! command -v rclone >/dev/null 2>&1; then
    SUDO=$(command -v sudo || true)
    $SUDO apt-get update -q >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rclone >/dev/null
fi
"$AWS" --version
rclone version 2>&1 | sed -n 1p  # sed reads to the end: head would close the pipe early and pipefail would fail on SIGPIPE

port=$(free_port)
start_dev "$work/dev" "$port" --tls

endpoint="https://127.0.0.1:$port"
grep -q "serving S3 at $endpoint" "$work/dev.out" || fail "the banner does not name $endpoint: $(cat "$work/dev.out")"
ca=$(sed -n 's/^TLS: clients trust the cluster CA \([^ ]*\) .*/\1/p' "$work/dev.out")
[ -f "$ca" ] || fail "the banner names no CA bundle: $(cat "$work/dev.out")"
check "the banner names the https endpoint and the CA bundle"

# Nothing but the cluster CA is trusted, whatever the machine's environment says.
unset AWS_CA_BUNDLE REQUESTS_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE
export AWS_SHARED_CREDENTIALS_FILE="$work/dev/credentials" AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$work/aws-config"
printf '[default]\ns3 =\n    addressing_style = path\n' >"$AWS_CONFIG_FILE"
a() { timeout 300 "$AWS" --endpoint-url "$endpoint" --ca-bundle "$ca" "$@"; }

if timeout 60 "$AWS" --endpoint-url "$endpoint" s3 ls >/dev/null 2>&1; then
    fail "the aws CLI got through without the cluster CA"
fi
check "without the cluster CA the aws CLI is refused"
if curl -s --max-time 10 "http://127.0.0.1:$port/" -o /dev/null; then
    fail "plain HTTP was answered on the TLS port"
fi
check "plain HTTP gets no answer"

a s3 mb s3://registry >/dev/null
head -c $((20 * 1024 * 1024)) /dev/urandom >"$work/big"
a s3 cp --only-show-errors "$work/big" s3://registry/land/big.bin
a s3 cp --only-show-errors s3://registry/land/big.bin "$work/big.back"
cmp -s "$work/big" "$work/big.back" || fail "the aws CLI read back other bytes"
a s3 ls s3://registry/land/ | grep -c "20971520 big.bin" >/dev/null || fail "the aws CLI does not list big.bin"
check "aws CLI: bucket, 20 MiB up and down, list"

# SigV2 presigned URLs (the aws CLI v1 default) are refused and name SigV4.
url=$(a s3 presign s3://registry/land/big.bin)
if [[ "$url" == *X-Amz-Signature* ]]; then
    echo "note: this aws CLI presigns with SigV4 by default"
else
    body=$(curl -s --cacert "$ca" "$url")
    [[ "$body" == *AWS4-HMAC-SHA256* ]] || fail "a SigV2 presigned URL was not refused naming SigV4: $body"
    check "a SigV2 presigned URL is refused, naming SigV4"
fi
printf '[default]\ns3 =\n    addressing_style = path\n    signature_version = s3v4\n' >"$AWS_CONFIG_FILE"
url=$(a s3 presign --expires-in 300 s3://registry/land/big.bin)
[[ "$url" == *X-Amz-Signature* ]] || fail "s3.signature_version = s3v4 did not presign with SigV4: $url"
curl -s --fail --cacert "$ca" "$url" -o "$work/presigned"
cmp -s "$work/big" "$work/presigned" || fail "the presigned GET returned other bytes"
check "a SigV4 presigned URL (s3.signature_version = s3v4) works"

# boto3, trusting the CA file.
ENDPOINT="$endpoint" CA="$ca" "$PY" - <<'PY'
import os, ssl, urllib.request, boto3, botocore.config
cfg = botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"})
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"], verify=os.environ["CA"], config=cfg)
s3.put_object(Bucket="registry", Key="boto/parcel.csv", Body=b"parcel,owner\n7/12,Roe\n")
assert s3.get_object(Bucket="registry", Key="boto/parcel.csv")["Body"].read() == b"parcel,owner\n7/12,Roe\n"
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="registry", Prefix="boto/")["Contents"]]
assert keys == ["boto/parcel.csv"], keys
url = s3.generate_presigned_url("get_object", Params={"Bucket": "registry", "Key": "boto/parcel.csv"}, ExpiresIn=300)
ctx = ssl.create_default_context(cafile=os.environ["CA"])
assert urllib.request.urlopen(url, context=ctx).read() == b"parcel,owner\n7/12,Roe\n"
out = s3.delete_objects(Bucket="registry", Delete={"Objects": [{"Key": "boto/parcel.csv"}]})
assert not out.get("Errors"), out
assert "Contents" not in s3.list_objects_v2(Bucket="registry", Prefix="boto/")
PY
check "boto3: put, get, list, presigned GET, delete_objects"

# rclone, with the CA as its only trust.
access=$(sed -n 's/^aws_access_key_id = //p' "$work/dev/credentials")
secret=$(sed -n 's/^aws_secret_access_key = //p' "$work/dev/credentials")
export RCLONE_CONFIG="$work/rclone.conf"
cat >"$RCLONE_CONFIG" <<EOF
[ex]
type = s3
provider = Other
access_key_id = $access
secret_access_key = $secret
endpoint = $endpoint
region = us-east-1
force_path_style = true
EOF
r() { timeout 300 rclone --ca-cert "$ca" --retries 1 --low-level-retries 1 "$@"; }
mkdir -p "$work/tree/deeds"
for i in 1 2 3; do head -c $((i * 70000)) /dev/urandom >"$work/tree/deeds/deed-$i"; done
r copy "$work/tree" ex:registry/rclone
r copy ex:registry/rclone "$work/tree.back"
diff -r "$work/tree" "$work/tree.back" || fail "rclone read back other files"
[ "$(r lsf ex:registry/rclone/deeds | wc -l)" = 3 ] || fail "rclone does not list 3 deeds"
r check "$work/tree" ex:registry/rclone >/dev/null 2>&1 || fail "rclone check found differences"
check "rclone: copy up and down, list, check"

# rclone and versions: it turns versioning on, and lists and reads an old version.
r mkdir ex:archive
r backend versioning ex:archive Enabled >/dev/null
[ "$(r backend versioning ex:archive)" = Enabled ] || fail "rclone does not see versioning on"
r copyto "$work/tree/deeds/deed-1" ex:archive/deed
r copyto "$work/tree/deeds/deed-2" ex:archive/deed
[ "$(r lsf --s3-versions ex:archive | wc -l)" = 2 ] || fail "rclone --s3-versions: $(r lsf --s3-versions ex:archive)"
old=$(r lsf --s3-versions ex:archive | grep -v '^deed$')
r cat --s3-versions "ex:archive/$old" | cmp -s - "$work/tree/deeds/deed-1" \
    || fail "rclone read back another old version"
check "rclone: versioning on, old versions listed and read"

stop_dev
result
