#!/usr/bin/env bash
# Shard bytes per QUIC packet from the gateway to the nodes during one large PUT into
# `exclaved dev` (issue 19, README "Packets"), and the path MTU each connection reached.
# Packets come from `exclave_peer_sent_packets`, the MTU from `exclave_peer_mtu_bytes`.
#
#   bash benches/packets.sh            # 64 MiB, the debug binaries
#   EXCLAVED=target/release/exclaved PACKETS_MIB=256 bash benches/packets.sh
#
# boto3 and the aws CLI: the machine's, else from PyPI (tests/cli/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/cli/lib.sh
mib=${PACKETS_MIB:-64}
port=$(free_port)
start_dev "$work/dev" "$port"
"$PY" - "$work/dev" "$port" "$mib" <<'EOF'
import configparser, os, re, sys, urllib.request
import boto3, botocore.config

d, port, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
cred = configparser.ConfigParser()
cred.read(os.path.join(d, "credentials"))
c = cred["default"]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id=c["aws_access_key_id"],
                  aws_secret_access_key=c["aws_secret_access_key"],
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
toml = open(os.path.join(d, "gateway", "gateway.toml")).read()
admin = re.search(r'admin_listen\s*=\s*"([^"]+)"', toml).group(1)
token = open(os.path.join(d, "gateway", "admin.token")).read().strip()

def metrics():
    req = urllib.request.Request(f"http://{admin}/metrics",
                                 headers={"Authorization": f"Bearer {token}"})
    text = urllib.request.urlopen(req).read().decode()
    def of(name):
        return {l.split('"')[1]: float(l.split()[-1]) for l in text.splitlines()
                if l.startswith(name + "{")}
    return of("exclave_peer_sent_packets"), of("exclave_peer_mtu_bytes")

s3.create_bucket(Bucket="packets")
s3.put_object(Bucket="packets", Key="warm", Body=b"x")
before, mtu_before = metrics()
s3.put_object(Bucket="packets", Key="big", Body=os.urandom(mib << 20))
after, mtu_after = metrics()
packets = sum(after.values()) - sum(before.values())
shard_bytes = (mib << 20) * 5 / 3  # 3+2: every byte goes out as 5/3 of it
print(f"MTU before the PUT: {sorted(set(mtu_before.values()))}, after: {sorted(set(mtu_after.values()))}")
print(f"{mib} MiB PUT: {packets:.0f} packets to the nodes, {shard_bytes / packets:.0f} shard bytes per packet")
EOF
stop_dev
