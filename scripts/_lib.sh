# shellcheck shell=bash
# What scripts/backends.sh and scripts/fleet.sh share: messages, timing, free ports, and the
# life of a background process kept by pid file. Sourced, never run. The sourcing script sets
#   TAG      the prefix of its messages ("backends", "fleet")
#   STATE    the folder of its pid files and logs
#   TIMEOUT  seconds wait_healthy waits
# and defines `program NAME` (a string the process's command line contains: a reused pid is not
# taken for ours) and `healthy NAME` (exit 0 once the process answers).

say() { echo "$TAG: $*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

free_ports() {  # free_ports N HOST: N free TCP ports on HOST, the OS's choice for port 0
    # All sockets stay bound until every port is chosen, so no port is handed out twice.
    python3 - "$1" "$2" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind((sys.argv[2], 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

pid_of() {  # prints the pid if this state directory's process for $1 is alive (and not a reused pid)
    local pid
    pid=$(cat "$STATE/$1.pid" 2>/dev/null) || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -e "$(program "$1")" &&
        echo "$pid"
}

wait_healthy() {  # until `healthy NAME`; dies (showing the log's tail) if the process exits or TIMEOUT passes
    local name=$1 deadline
    deadline=$(($(date +%s) + TIMEOUT))
    until healthy "$name"; do
        if ! kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null; then
            tail -n 30 "$STATE/$name.log" >&2
            die "$name exited during start-up (log above, full log $STATE/$name.log)"
        fi
        if (($(date +%s) >= deadline)); then
            tail -n 30 "$STATE/$name.log" >&2
            stop "$name"
            die "$name not healthy after ${TIMEOUT}s (log above, full log $STATE/$name.log)"
        fi
        sleep 0.3
    done
}

stop() {  # SIGTERM the process for $1, SIGKILL after 20 s; nothing if it is not running
    local name=$1 pid i
    pid=$(pid_of "$name") || { rm -f "$STATE/$name.pid"; return 0; }
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && { say "$name did not stop in 20 s; killing it"; kill -KILL "$pid"; }
    rm -f "$STATE/$name.pid"
    say "$name down"
}
