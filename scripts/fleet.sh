#!/usr/bin/env bash
# The fleet tier on loopback: a collector gateway (tail sampling on whole traces, mltrace policies),
# a storage/query Jaeger with Badger, and Prometheus (OTLP receiver) for drift merged across replicas.
#
#   scripts/fleet.sh build                  build what is missing into the cache (idempotent)
#   scripts/fleet.sh up                     build if needed, start all three on free ports, wait healthy
#   scripts/fleet.sh down                   stop what this state directory started
#   scripts/fleet.sh restart NAME           stop and start one of: gateway store prometheus
#   scripts/fleet.sh status                 up/down of each; non-zero exit if any is down
#   scripts/fleet.sh env                    export lines for the endpoints (eval "$(... env)")
#
# Jaeger (module v1.75.0, the binary scripts/backends.sh builds) is both the gateway
# (deploy/gateway.yaml) and the store (deploy/store.yaml). Prometheus is built from the Go module
# github.com/prometheus/prometheus (scripts/fleet.env) with the build tag remove_all_sd: no cloud
# service discovery (file and http discovery stay), which roughly halves the build.
#
# Environment: MLTRACE_FLEET_STATE (default .fleet/: pid files, logs, Badger and TSDB data, ports),
# MLTRACE_BACKENDS_CACHE (default ~/.cache/mltrace-backends), MLTRACE_FLEET_TIMEOUT (health wait,
# default 120 s), and the gateway's policy knobs FLEET_RATIO (0.1), FLEET_SLOW_MS (500),
# FLEET_DECISION_WAIT (10s). Ports are chosen free on 127.0.0.1 at the first `up` and kept in
# $STATE/ports.env, so a restart comes back on the same ones.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/backends.env
source "$ROOT/scripts/backends.env"
# shellcheck source=scripts/fleet.env
source "$ROOT/scripts/fleet.env"

STATE="${MLTRACE_FLEET_STATE:-$ROOT/.fleet}"
CACHE="${MLTRACE_BACKENDS_CACHE:-$HOME/.cache/mltrace-backends}"
TIMEOUT="${MLTRACE_FLEET_TIMEOUT:-120}"
HOST=127.0.0.1
ALL=(store prometheus gateway)  # start order: what the gateway sends to comes first

JAEGER_BIN="$CACHE/jaeger-$JAEGER_MODULE_VERSION"
PROMETHEUS_MODULE=github.com/prometheus/prometheus
PROMETHEUS_BIN="$CACHE/prometheus-$PROMETHEUS_VERSION"

TAG=fleet
# shellcheck source=scripts/_lib.sh
source "$ROOT/scripts/_lib.sh"  # say, die, now, since, free_ports, pid_of, wait_healthy, stop

# ---------------------------------------------------------------- build

build_jaeger() {
    [[ -x "$JAEGER_BIN" ]] || "$ROOT/scripts/backends.sh" build jaeger
}

build_prometheus() {
    [[ -x "$PROMETHEUS_BIN" ]] && return
    command -v go >/dev/null || die "Go (>= 1.26) is needed to build Prometheus; put it on PATH"
    local t0 work
    t0=$(now)
    work=$(mktemp -d)
    mkdir -p "$CACHE"
    say "building Prometheus $PROMETHEUS_VERSION from source (module v$PROMETHEUS_MODULE_VERSION; minutes)"
    # No replace directives in its go.mod, so `go install pkg@version` works (no copy needed).
    if ! (cd "$work" && GOBIN="$work/bin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath \
        -tags remove_all_sd \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
        "$PROMETHEUS_MODULE/cmd/prometheus@v$PROMETHEUS_MODULE_VERSION") >"$work/build.log" 2>&1; then
        tail -n 30 "$work/build.log" >&2
        rm -rf "$work"
        die "Prometheus build failed (log above)"
    fi
    "$work/bin/prometheus" --version >/dev/null 2>&1 || { rm -rf "$work"; die "the built Prometheus does not run"; }
    mv "$work/bin/prometheus" "$PROMETHEUS_BIN"
    rm -rf "$work"
    say "built $PROMETHEUS_BIN in $(since "$t0")"
}

cmd_build() { build_jaeger; build_prometheus; }

# ---------------------------------------------------------------- ports and settings

ratio_settings() {  # FLEET_RATIO -> the th threshold (14 hex digits) and the adjusted count
    python3 - "${FLEET_RATIO:-0.1}" <<'PY'
import sys
p = float(sys.argv[1])
if not 0 < p <= 1:
    sys.exit(f"FLEET_RATIO must be within (0, 1]; got {p}")
t = (1 << 56) - round(p * (1 << 56))  # as OpenTelemetry's reference code
print(f"FLEET_RATIO_THRESHOLD={t:014x}")
print(f"FLEET_ADJUSTED_COUNT={(1 << 56) / ((1 << 56) - t)!r}")
PY
}

ensure_ports() {
    mkdir -p "$STATE"
    [[ -s "$STATE/ports.env" ]] && return
    local p
    read -r -a p <<<"$(free_ports 10 "$HOST")"
    cat >"$STATE/ports.env" <<EOF
FLEET_GATEWAY_OTLP_GRPC_PORT=${p[0]}
FLEET_GATEWAY_OTLP_HTTP_PORT=${p[1]}
FLEET_GATEWAY_HEALTH_PORT=${p[2]}
FLEET_GATEWAY_METRICS_PORT=${p[3]}
FLEET_STORE_OTLP_GRPC_PORT=${p[4]}
FLEET_STORE_QUERY_PORT=${p[5]}
FLEET_STORE_QUERY_GRPC_PORT=${p[6]}
FLEET_STORE_HEALTH_PORT=${p[7]}
FLEET_PROMETHEUS_PORT=${p[8]}
FLEET_SPARE_PORT=${p[9]}
EOF
}

load_ports() {
    ensure_ports
    set -a
    # shellcheck disable=SC1091
    source "$STATE/ports.env"
    set +a
}

# ---------------------------------------------------------------- processes

program() {
    case $1 in
        gateway | store) echo "jaeger-$JAEGER_MODULE_VERSION" ;;
        prometheus) echo "prometheus-$PROMETHEUS_VERSION" ;;
    esac
}

healthy() {
    case $1 in
        gateway) curl -fsS -m 2 "http://$HOST:$FLEET_GATEWAY_HEALTH_PORT/status" >/dev/null 2>&1 ;;
        store) curl -fsS -m 2 "http://$HOST:$FLEET_STORE_HEALTH_PORT/status" >/dev/null 2>&1 &&
            curl -fsS -m 2 "http://$HOST:$FLEET_STORE_QUERY_PORT/api/services" >/dev/null 2>&1 ;;
        prometheus) curl -fsS -m 2 "http://$HOST:$FLEET_PROMETHEUS_PORT/-/ready" >/dev/null 2>&1 ;;
    esac
}

launch() {
    case $1 in
        gateway)
            local settings
            settings=$(ratio_settings) || die "bad FLEET_RATIO"
            # shellcheck disable=SC2086
            exec setsid env FLEET_HOST=$HOST $settings \
                FLEET_STORE_OTLP_ENDPOINT="$HOST:$FLEET_STORE_OTLP_GRPC_PORT" \
                FLEET_PROMETHEUS_OTLP_ENDPOINT="http://$HOST:$FLEET_PROMETHEUS_PORT/api/v1/otlp" \
                "$JAEGER_BIN" --config "file:$ROOT/deploy/gateway.yaml" ;;
        store)
            mkdir -p "$STATE/badger"
            exec setsid env FLEET_HOST=$HOST FLEET_BADGER_DIR="$STATE/badger" \
                "$JAEGER_BIN" --config "file:$ROOT/deploy/store.yaml" ;;
        prometheus)
            sed "s/fleet-gateway:8888/$HOST:$FLEET_GATEWAY_METRICS_PORT/" "$ROOT/deploy/prometheus.yml" \
                >"$STATE/prometheus.yml"
            exec setsid "$PROMETHEUS_BIN" --config.file="$STATE/prometheus.yml" \
                --storage.tsdb.path="$STATE/prometheus-data" --web.listen-address="$HOST:$FLEET_PROMETHEUS_PORT" \
                --web.enable-otlp-receiver --web.enable-lifecycle ;;
    esac
}

start() {
    local name=$1
    pid_of "$name" >/dev/null && return
    rm -f "$STATE/$name.pid"
    launch "$name" </dev/null >>"$STATE/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

# ---------------------------------------------------------------- commands

cmd_up() {
    local t0 name
    t0=$(now)
    cmd_build
    load_ports
    for name in "${ALL[@]}"; do start "$name"; done
    for name in "${ALL[@]}"; do wait_healthy "$name"; done
    say "up in $(since "$t0") (state $STATE)"
}

cmd_down() {
    [[ -s "$STATE/ports.env" ]] || return 0
    local name
    for name in gateway prometheus store; do stop "$name"; done
}

cmd_restart() {
    local name=${1:-}
    [[ " ${ALL[*]} " == *" $name "* ]] || die "restart what? one of: ${ALL[*]}"
    load_ports
    stop "$name"
    start "$name"
    wait_healthy "$name"
}

cmd_status() {
    load_ports
    local name pid bad=0
    for name in "${ALL[@]}"; do
        if pid=$(pid_of "$name") && healthy "$name"; then
            printf '%-10s up    pid %s\n' "$name" "$pid"
        else
            printf '%-10s down\n' "$name"
            bad=1
        fi
    done
    return "$bad"
}

cmd_env() {
    load_ports
    cat <<EOF
export MLTRACE_FLEET_OTLP_ENDPOINT=http://$HOST:$FLEET_GATEWAY_OTLP_GRPC_PORT
export MLTRACE_FLEET_OTLP_HTTP_ENDPOINT=http://$HOST:$FLEET_GATEWAY_OTLP_HTTP_PORT
export MLTRACE_FLEET_GATEWAY_METRICS_URL=http://$HOST:$FLEET_GATEWAY_METRICS_PORT/metrics
export MLTRACE_FLEET_STORE_OTLP_ENDPOINT=http://$HOST:$FLEET_STORE_OTLP_GRPC_PORT
export MLTRACE_FLEET_JAEGER_QUERY_URL=http://$HOST:$FLEET_STORE_QUERY_PORT
export MLTRACE_FLEET_PROMETHEUS_URL=http://$HOST:$FLEET_PROMETHEUS_PORT
EOF
}

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        build) cmd_build ;;
        up) cmd_up ;;
        down) cmd_down ;;
        restart) cmd_restart "$@" ;;
        status) cmd_status ;;
        env) cmd_env ;;
        *) die "usage: $0 build|up|down|status|env|restart NAME" ;;
    esac
}

main "$@"
