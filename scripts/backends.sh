#!/usr/bin/env bash
# The real tracing backends on loopback, for the e2e tests and for developers:
# Jaeger v2 (built from source with `go`), Zipkin server (the exec jar, fetched with `mvn`) and
# Redis (Debian package). Everything is fetched through the ordinary clients (go, mvn, apt-get),
# never from a hard-coded registry URL.
#
#   scripts/backends.sh build  [NAME...]   install/build what is missing into the cache
#   scripts/backends.sh up     [NAME...]   build if needed, start, wait until healthy (idempotent)
#   scripts/backends.sh down   [NAME...]   stop what this checkout started
#   scripts/backends.sh status [NAME...]   up/down with ports; non-zero exit if any is down
#   scripts/backends.sh env                export lines for the endpoints (eval "$(... env)")
#
# NAME is jaeger, zipkin or redis (default: all three). Versions and default ports: scripts/backends.env.
# State (pid files, logs, chosen ports): $MLTRACE_BACKENDS_STATE, default .backends/.
# Cache: $MLTRACE_BACKENDS_CACHE or ~/.cache/mltrace-backends.
# MLTRACE_BACKENDS_TIMEOUT: seconds to wait for health (default 120).
# MLTRACE_BACKENDS_FREE_PORTS=1: `up` picks free ports (the OS's choice) instead of the defaults,
#   once per state directory, and records them in $STATE/ports.env; every later command with the
#   same state directory (status, env, down, up again after a down) uses them. scripts/test.sh runs
#   its own set this way, so a Jaeger or Redis already on the default ports is no obstacle.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/backends.env
source "$ROOT/scripts/backends.env"

STATE="${MLTRACE_BACKENDS_STATE:-$ROOT/.backends}"
PORT_VARS=(JAEGER_OTLP_GRPC_PORT JAEGER_OTLP_HTTP_PORT JAEGER_QUERY_HTTP_PORT JAEGER_QUERY_GRPC_PORT
    JAEGER_HEALTH_PORT ZIPKIN_PORT REDIS_PORT)
# shellcheck source=/dev/null
if [[ -f "$STATE/ports.env" ]]; then source "$STATE/ports.env"; fi
CACHE="${MLTRACE_BACKENDS_CACHE:-$HOME/.cache/mltrace-backends}"
TIMEOUT="${MLTRACE_BACKENDS_TIMEOUT:-120}"
ALL=(jaeger zipkin redis)

JAEGER_MODULE=github.com/jaegertracing/jaeger
JAEGER_BIN="$CACHE/jaeger-$JAEGER_MODULE_VERSION"
ZIPKIN_ARTIFACT="io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec"
ZIPKIN_JAR="$CACHE/zipkin-server-$ZIPKIN_VERSION-exec.jar"

TAG=backends
# shellcheck source=scripts/_lib.sh
source "$ROOT/scripts/_lib.sh"  # say, die, now, since, free_ports, pid_of, wait_healthy, stop

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    say "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq "$@" >/dev/null ||
        { as_root apt-get update -qq && as_root apt-get install -y -qq "$@" >/dev/null; }
}

# ---------------------------------------------------------------- install / build

build_jaeger() {
    [[ -x "$JAEGER_BIN" ]] && return
    command -v go >/dev/null || die "Go (>= 1.24) is needed to build Jaeger; put it on PATH"
    local t0 work dir
    t0=$(now)
    work=$(mktemp -d)
    # The v2 tags are not Go module versions; v1.75.0 is the same release (v2.12.0). Its go.mod
    # has a replace directive, so `go install ...@v1.75.0` refuses: build from a copy instead.
    say "building Jaeger $JAEGER_MODULE_VERSION from source (several minutes on a cold machine)"
    dir=$(cd "$work" && go mod download -json "$JAEGER_MODULE@v$JAEGER_MODULE_VERSION" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') ||
        { rm -rf "$work"; die "go mod download $JAEGER_MODULE@v$JAEGER_MODULE_VERSION failed"; }
    cp -r "$dir" "$work/src"
    chmod -R u+w "$work/src"
    mkdir -p "$CACHE"
    if ! (cd "$work/src" && CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X $JAEGER_MODULE/internal/version.latestVersion=v$JAEGER_MODULE_VERSION" \
        -o "$JAEGER_BIN.part" ./cmd/jaeger) >"$work/build.log" 2>&1; then
        tail -n 30 "$work/build.log" >&2
        rm -rf "$work"
        die "Jaeger build failed (log above)"
    fi
    rm -rf "$work"
    "$JAEGER_BIN.part" version >/dev/null 2>&1 || die "the built Jaeger binary does not run"
    mv "$JAEGER_BIN.part" "$JAEGER_BIN"
    say "built $JAEGER_BIN in $(since "$t0")"
}

build_zipkin() {
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    command -v curl >/dev/null || apt_install curl ca-certificates  # the health checks use it
    [[ -s "$ZIPKIN_JAR" ]] && return
    command -v mvn >/dev/null || apt_install maven
    mkdir -p "$CACHE"
    local work
    work=$(mktemp -d)
    # Maven resolves the artifact from the repositories it is configured with (a mirror in
    # ~/.m2/settings.xml works too) and, with --strict-checksums, refuses a download whose checksum
    # does not match the one the repository publishes. dependency:copy needs no pom.
    say "fetching $ZIPKIN_ARTIFACT with mvn"
    if ! mvn -B -q --strict-checksums dependency:copy -Dartifact="$ZIPKIN_ARTIFACT" \
        -DoutputDirectory="$work" >"$work/mvn.log" 2>&1; then
        tail -n 30 "$work/mvn.log" >&2
        rm -rf "$work"
        die "mvn could not fetch $ZIPKIN_ARTIFACT (log above)"
    fi
    mv "$work/zipkin-server-$ZIPKIN_VERSION-exec.jar" "$ZIPKIN_JAR.part"
    rm -rf "$work"
    mv "$ZIPKIN_JAR.part" "$ZIPKIN_JAR"
}

build_redis() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return
    apt_install redis-server
}

# ---------------------------------------------------------------- per-backend facts

ports() {
    case $1 in
        jaeger) echo "$JAEGER_OTLP_GRPC_PORT $JAEGER_OTLP_HTTP_PORT $JAEGER_QUERY_HTTP_PORT $JAEGER_QUERY_GRPC_PORT $JAEGER_HEALTH_PORT" ;;
        zipkin) echo "$ZIPKIN_PORT" ;;
        redis) echo "$REDIS_PORT" ;;
    esac
}

describe() {
    local h=$LISTEN_HOST
    case $1 in
        jaeger) echo "otlp-grpc $h:$JAEGER_OTLP_GRPC_PORT  otlp-http $h:$JAEGER_OTLP_HTTP_PORT  query http://$h:$JAEGER_QUERY_HTTP_PORT  health http://$h:$JAEGER_HEALTH_PORT/status" ;;
        zipkin) echo "http://$h:$ZIPKIN_PORT (api/v2, /health)" ;;
        redis) echo "redis://$h:$REDIS_PORT/0" ;;
    esac
}

# program NAME: a string that the backend process's command line contains
program() {
    case $1 in
        jaeger) echo "jaeger-$JAEGER_MODULE_VERSION" ;;
        zipkin) echo "zipkin-server-$ZIPKIN_VERSION" ;;
        redis) echo "redis-server" ;;
    esac
}

healthy() {
    local h=$LISTEN_HOST
    case $1 in
        jaeger) curl -fsS -m 2 "http://$h:$JAEGER_HEALTH_PORT/status" >/dev/null 2>&1 &&
            curl -fsS -m 2 "http://$h:$JAEGER_QUERY_HTTP_PORT/api/services" >/dev/null 2>&1 ;;
        zipkin) curl -fsS -m 2 "http://$h:$ZIPKIN_PORT/health" >/dev/null 2>&1 ;;
        redis) [[ "$(redis-cli -h "$h" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] ;;
    esac
}

launch() {
    local h=$LISTEN_HOST
    case $1 in
        jaeger) exec setsid env JAEGER_LISTEN_HOST="$h" JAEGER_OTLP_GRPC_PORT="$JAEGER_OTLP_GRPC_PORT" \
            JAEGER_OTLP_HTTP_PORT="$JAEGER_OTLP_HTTP_PORT" JAEGER_QUERY_HTTP_PORT="$JAEGER_QUERY_HTTP_PORT" \
            JAEGER_QUERY_GRPC_PORT="$JAEGER_QUERY_GRPC_PORT" JAEGER_HEALTH_PORT="$JAEGER_HEALTH_PORT" \
            "$JAEGER_BIN" --config "file:$ROOT/scripts/jaeger-config.yaml" ;;
        # Armeria's port list is replaced as a whole, so the IP needs the port and protocol too.
        zipkin) exec setsid env STORAGE_TYPE=mem QUERY_PORT="$ZIPKIN_PORT" \
            ARMERIA_PORTS_0_IP="$h" ARMERIA_PORTS_0_PORT="$ZIPKIN_PORT" ARMERIA_PORTS_0_PROTOCOLS_0=http \
            java -Xmx512m -jar "$ZIPKIN_JAR" ;;
        redis) exec setsid redis-server --bind "$h" --port "$REDIS_PORT" --save "" --appendonly no \
            --daemonize no --dir "$STATE" --logfile "" ;;
    esac
}

# ---------------------------------------------------------------- processes

port_taken() { (exec 3<>"/dev/tcp/$LISTEN_HOST/$1") 2>/dev/null; }

choose_free_ports() {  # once per state directory: ports the OS hands out for port 0, kept in ports.env
    [[ -f "$STATE/ports.env" ]] && return
    local ports i=0 var
    read -r -a ports <<<"$(free_ports "${#PORT_VARS[@]}" "$LISTEN_HOST")"
    {
        echo "# Ports chosen by scripts/backends.sh (MLTRACE_BACKENDS_FREE_PORTS=1) for this state directory."
        for var in "${PORT_VARS[@]}"; do
            echo "$var=${ports[$i]}"
            i=$((i + 1))
        done
    } >"$STATE/ports.env.part"
    mv "$STATE/ports.env.part" "$STATE/ports.env"
    # shellcheck source=/dev/null
    source "$STATE/ports.env"
    say "free ports chosen: $(grep -v '^#' "$STATE/ports.env" | tr '\n' ' ')"
}

start() {
    local name=$1 port
    if pid_of "$name" >/dev/null; then return; fi
    rm -f "$STATE/$name.pid"
    for port in $(ports "$name"); do
        port_taken "$port" && die "$name: port $port is already in use by a process this checkout did not start"
    done
    # setsid: its own session, so a Ctrl-C meant for the caller does not reach it.
    launch "$name" </dev/null >"$STATE/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

# ---------------------------------------------------------------- commands

cmd_build() {
    local name
    for name in "$@"; do "build_$name"; done
}

cmd_up() {
    local t0 name
    t0=$(now)
    cmd_build "$@"
    mkdir -p "$STATE"
    if [[ "${MLTRACE_BACKENDS_FREE_PORTS:-}" == 1 ]]; then choose_free_ports; fi
    for name in "$@"; do start "$name"; done  # all start together, then each is waited for
    for name in "$@"; do wait_healthy "$name"; done
    say "up in $(since "$t0"): $*"
}

cmd_down() {
    local name
    for name in "$@"; do stop "$name"; done
}

cmd_status() {
    local name pid bad=0
    for name in "$@"; do
        if pid=$(pid_of "$name") && healthy "$name"; then
            printf '%-7s up    pid %-8s %s\n' "$name" "$pid" "$(describe "$name")"
        else
            printf '%-7s down  %-12s %s\n' "$name" "" "$(describe "$name")"
            bad=1
        fi
    done
    return "$bad"
}

cmd_env() {  # from the ports in use: the defaults, or those ports.env recorded
    local h=$LISTEN_HOST
    cat <<EOF
export MLTRACE_E2E_OTLP_ENDPOINT=http://$h:$JAEGER_OTLP_GRPC_PORT
export MLTRACE_E2E_OTLP_HTTP_ENDPOINT=http://$h:$JAEGER_OTLP_HTTP_PORT
export MLTRACE_E2E_JAEGER_QUERY_URL=http://$h:$JAEGER_QUERY_HTTP_PORT
export MLTRACE_E2E_ZIPKIN_URL=http://$h:$ZIPKIN_PORT
export MLTRACE_E2E_REDIS_URL=redis://$h:$REDIS_PORT/0
export OTEL_EXPORTER_OTLP_ENDPOINT=http://$h:$JAEGER_OTLP_GRPC_PORT
export OTEL_EXPORTER_ZIPKIN_ENDPOINT=http://$h:$ZIPKIN_PORT/api/v2/spans
EOF
}

main() {
    local cmd=${1:-}
    shift || true
    local names=("$@") name
    ((${#names[@]})) || names=("${ALL[@]}")
    for name in "${names[@]}"; do
        [[ " ${ALL[*]} " == *" $name "* ]] || die "unknown backend '$name' (one of: ${ALL[*]})"
    done
    case $cmd in
        build) cmd_build "${names[@]}" ;;
        up) cmd_up "${names[@]}" ;;
        down) cmd_down "${names[@]}" ;;
        status) cmd_status "${names[@]}" ;;
        env) cmd_env ;;
        *) die "usage: $0 up|down|status|build [jaeger|zipkin|redis ...] | env" ;;
    esac
}

main "$@"
