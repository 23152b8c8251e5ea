#!/usr/bin/env bash
# THE test command: the README and CI (.ci/run) run exactly this.
#   .venv (created if missing) -> install mltrace[test] and every integrations/*/ distribution
#   -> real backends up (scripts/backends.sh) -> ruff -> mypy -> pytest with MLTRACE_E2E=1
#   -> the backends this run started are stopped again.
# Exit status: pytest's (5, "no tests collected", counts as a failure), else 1 if ruff or mypy failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[[ -d .venv ]] || python3 -m venv .venv
# shellcheck source=/dev/null
source .venv/bin/activate

python -m pip install -q -e ".[test]"
for dir in integrations/*/; do
    if [[ -f "$dir/pyproject.toml" ]]; then
        python -m pip install -q -e "${dir%/}[test]"
    fi
done

# Stop on exit only what this run starts: backends someone already had up stay up.
started=()
for backend in jaeger zipkin redis; do
    scripts/backends.sh status "$backend" >/dev/null 2>&1 || started+=("$backend")
done
if ((${#started[@]})); then
    trap 'scripts/backends.sh down "${started[@]}"' EXIT
    scripts/backends.sh up "${started[@]}"
fi
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

((status != 0 || lint == 0)) || status=1
exit "$status"
