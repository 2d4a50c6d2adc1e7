# Shared by the scripts in tests/cli: a work directory removed on exit (with the dev process),
# the aws CLI and boto3 (the machine's, else from PyPI), starting `exclaved dev`, and the
# "ok" counter whose closing line ./check adds up. Source it; it sets `work`, `pid`, `PY`,
# `AWS`, `exclaved`, `passed`.

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# A Python with boto3, and the aws CLI: the machine's if it has both, else a venv from PyPI.
python_with_clients() {
    if python3 -c 'import boto3' 2>/dev/null && command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then
        echo "python3 aws"
        return
    fi
    python3 -m venv "$work/venv" >/dev/null 2>&1 \
        && "$work/venv/bin/pip" install --quiet awscli boto3 >/dev/null 2>&1 \
        && { echo "$work/venv/bin/python $work/venv/bin/aws"; return; }
    python3 -m pip install --quiet --user awscli boto3 >/dev/null 2>&1 \
        || python3 -m pip install --quiet --user --break-system-packages awscli boto3 >/dev/null
    echo "python3 $(python3 -m site --user-base)/bin/aws"
}
read -r PY AWS <<<"$(python_with_clients)"

exclaved=$(realpath "${EXCLAVED:-${CARGO_TARGET_DIR:-target}/debug/exclaved}")

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_dev DIR PORT [ARGS...]: starts `exclaved dev` and waits (bounded) for its banner in
# $work/dev.out.
start_dev() {
    local dir=$1 port=$2
    shift 2
    "$exclaved" dev --dir "$dir" --listen "127.0.0.1:$port" "$@" >"$work/dev.out" 2>>"$work/dev.log" &
    pid=$!
    for _ in $(seq 1 300); do
        if grep -q "serving S3" "$work/dev.out" 2>/dev/null; then return; fi
        if ! kill -0 "$pid" 2>/dev/null; then cat "$work/dev.log" >&2; exit 1; fi
        sleep 0.1
    done
    echo "exclaved dev did not start" >&2
    exit 1
}

# stop_dev: SIGTERM, and a bounded wait for the process to end.
stop_dev() {
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
fail() { echo "FAILED: $*" >&2; exit 1; }
result() { echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"; }
