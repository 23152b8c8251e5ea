#!/usr/bin/env bash
# THE test command: the README and CI (.ci/run) run exactly this.
#   .venv (created if missing) -> install mltrace[test] and every integrations/*/ distribution
#   -> Chromium (scripts/chromium.sh) -> this run's own real backends, on free ports
#   (scripts/backends.sh) and the fleet's binaries (scripts/fleet.sh build) -> ruff -> mypy
#   -> pytest with MLTRACE_E2E=1 -> the oldest FastAPI we support, in a second small venv
#   -> this run's backends are stopped again.
# Exit status: pytest's (5, "no tests collected", counts as a failure), else 1 if ruff, mypy or the
# old-FastAPI run failed.
#
# The backends run on ports the OS picks, in a private state directory, so this command runs
# beside a Jaeger, Zipkin or Redis of your own on the default ports (4317/4318/16686/9411/6379),
# and beside another checkout's test run. The tests read the endpoints only from the
# MLTRACE_E2E_* variables exported here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
t0=$SECONDS

[[ -d .venv ]] || python3 -m venv .venv
# shellcheck source=/dev/null
source .venv/bin/activate

python -m pip install -q -e ".[test]"
for dir in integrations/*/; do
    if [[ -f "$dir/pyproject.toml" ]]; then
        python -m pip install -q -e "${dir%/}[test]"
    fi
done
scripts/chromium.sh  # Debian's Chromium for the browser tests in tests/ui (idempotent; never `playwright install`)

# The oldest FastAPI we claim (README "Supported versions"), with the Starlette it pins, in its own
# venv: built now (pip's cache makes it quick), run after the main suite. FASTAPI_OLDEST there.
FASTAPI_OLDEST=0.109.0
old=.venv-fastapi-$FASTAPI_OLDEST
[[ -d "$old" ]] || python3 -m venv "$old"
"$old/bin/python" -m pip install -q -e . "fastapi==$FASTAPI_OLDEST" "uvicorn>=0.30" "httpx>=0.27" \
    "pytest>=8" "pytest-asyncio>=0.23" httptools websockets gunicorn uvicorn-worker \
    "opentelemetry-instrumentation-httpx>=0.51b0"  # tests/serving/sampled_app.py's outgoing call

backends_state=$(mktemp -d -t mltrace-backends.XXXXXX)
export MLTRACE_BACKENDS_STATE=$backends_state MLTRACE_BACKENDS_FREE_PORTS=1
trap 'scripts/backends.sh down; rm -rf "$backends_state"' EXIT
scripts/backends.sh up
# Jaeger (shared with backends.sh) + Prometheus for tests/e2e/test_fleet.py, which starts and stops
# its own fleet on free ports; ~4-5 min on a cold Go cache.
scripts/fleet.sh build
eval "$(scripts/backends.sh env | grep MLTRACE_E2E_)"
export MLTRACE_E2E=1  # e2e tests fail, never skip, when a backend is missing

lint=0
ruff check . || lint=1
mypy || lint=1
for dir in integrations/*/; do
    if [[ -f "$dir/pyproject.toml" ]]; then
        (cd "$dir" && mypy) || lint=1
    fi
done

status=0
for tests in tests integrations/*/tests; do
    [[ -d "$tests" ]] || continue
    code=0
    pytest "$tests" || code=$?
    ((status != 0)) || status=$code
done

# The FastAPI serving tests again, under the oldest FastAPI we support (real uvicorn, loopback).
echo "== FastAPI $FASTAPI_OLDEST ($("$old/bin/python" -c 'import starlette; print("starlette", starlette.__version__)'))"
# tests/serving: the differential and keep-alive tests, real uvicorn (h11, httptools) and gunicorn.
"$old/bin/python" -m pytest -p no:cacheprovider tests/spans/test_fastapi_versions.py tests/serving || lint=1

((status != 0 || lint == 0)) || status=1
echo "scripts/test.sh: $((SECONDS - t0)) s"
exit "$status"
