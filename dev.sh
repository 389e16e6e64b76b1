#!/usr/bin/env bash
# The two commands of the README:  ./dev.sh serve   and   ./dev.sh test
# Each installs what is missing on a Debian machine (as root or with sudo): Python's venv,
# the package and its pinned dependencies, Stockfish; `test` also Chromium and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""

apt_install() {
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

python_bin() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  apt_install python3 python3-venv python3-dev
  echo python3
}

ensure_venv() {  # $1: the extras to install ("" or "[test]")
  local stamp=".venv/.installed-compiled$1" fresh=""
  if [ ! -x .venv/bin/python ]; then "$(python_bin)" -m venv .venv; fresh=1; fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing kibitz$1 into .venv …"
    # uv installs the same pinned set as pip, in a fifth of the time, and compiles the
    # packages' bytecode as pip does. Its --compile-bytecode skips packages already there,
    # so a venv made before is compiled by Python's compileall (slower: a fresh one is not).
    .venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.10"
    if [ -n "$fresh" ]; then
      .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python -e ".$1"
    else
      .venv/bin/uv pip install -q --python .venv/bin/python -e ".$1"
      .venv/bin/python -m compileall -q -j 0 "$(.venv/bin/python -c \
        'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
    fi
    touch "$stamp"
  fi
  # Where PYTHONDONTWRITEBYTECODE is set (these machines set it), no process writes the
  # bytecode it compiles: every `kibitz` process then compiled all of kibitz anew (3 of the
  # 5 s a server took to start). Compiled here once (unchanged files are skipped in a few
  # milliseconds).
  .venv/bin/python -m compileall -q src tests >/dev/null || true  # ruff names a broken file
}

ensure_stockfish() {
  if [ -n "${KIBITZ_STOCKFISH:-}" ]; then return; fi
  if command -v stockfish >/dev/null || [ -x /usr/games/stockfish ]; then return; fi
  echo "installing Debian's stockfish …"
  apt_install stockfish
}

ensure_espeak() {  # speech for the live commentary (optional at run time, tested)
  if command -v espeak-ng >/dev/null; then return; fi
  echo "installing Debian's espeak-ng …"
  apt_install espeak-ng
}

ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return; fi
  echo "installing Debian's chromium …"
  apt_install chromium
}

ensure_kafka() {  # Apache Kafka's jars from Maven Central, run with the machine's Java
  if ! command -v java >/dev/null; then
    echo "installing Debian's Java …"
    apt_install default-jre-headless
  fi
  if ! command -v mvn >/dev/null; then
    echo "installing Debian's Maven …"
    apt_install maven
  fi
  .venv/bin/kibitz bus fetch-kafka >/dev/null || { echo "cannot fetch Apache Kafka" >&2; exit 1; }
}

ensure_keda_schema() {  # deploy/kubernetes's ScaledObjects are checked against KEDA's schema
  ensure_node
  local dir=deploy/kubernetes/validate
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund -s >/dev/null) && touch "$dir/node_modules"
  fi
}

ensure_promtool() {  # checks and tests the alert rules
  if command -v promtool >/dev/null; then return; fi
  echo "installing Debian's prometheus (for promtool) …"
  apt_install prometheus
}

ensure_node() {
  if command -v node >/dev/null && command -v npm >/dev/null; then return; fi
  echo "installing Debian's nodejs and npm …"
  apt_install nodejs npm
}

frontend_sum() {  # what the bundle in src/kibitz/api/static/app/ was built from
  (cd frontend && find package.json package-lock.json build.mjs tsconfig.json src -type f -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
}

ensure_frontend() {  # $1: "check" also installs the tools to type-check the sources
  # The built bundle is committed, so that a pip install needs no Node; it is rebuilt here
  # when frontend/ changed since (the stamp holds the sources' checksum).
  local stamp=src/kibitz/api/static/app/SOURCES.sha256 sum
  sum=$(frontend_sum)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ] && [ "${1:-}" != "check" ]; then return; fi
  ensure_node
  if [ ! -f frontend/node_modules/.package-lock.json ] \
    || [ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]; then
    echo "installing the front end's packages (npm ci) …"
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    (cd frontend && npm run -s build)
    echo "$sum" > "$stamp"
  fi
}

ensure_postgres() {
  # A fresh Debian PostgreSQL takes TCP logins by password only (scram-sha-256), so the tests
  # get a role of their own with a password: `kibitz` may create and drop databases and end
  # the connections to them, no more.
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "installing PostgreSQL …"
    apt_install postgresql
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    # shellcheck disable=SC2046
    $SUDO pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | sort -n | tail -1) main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
  fi
  if [ -z "${KIBITZ_TEST_PG:-}" ]; then
    local role
    role=$($SUDO runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname = 'kibitz'" 2>/dev/null || true)
    if [ "$role" != "1" ]; then
      echo "creating the PostgreSQL role kibitz for the tests …"
      $SUDO runuser -u postgres -- psql -q -c "CREATE ROLE kibitz LOGIN CREATEDB PASSWORD 'kibitz'"
    fi
    # The tests drop their databases WITH (FORCE), which ends whatever is still connected.
    $SUDO runuser -u postgres -- env PGOPTIONS="-c client_min_messages=warning" \
      psql -q -c "GRANT pg_signal_backend TO kibitz"
    export KIBITZ_TEST_PG="postgresql://kibitz:kibitz@127.0.0.1:5432/postgres"
  fi
}

case "${1:-}" in
  serve)
    shift
    ensure_venv ""
    ensure_stockfish
    ensure_espeak
    ensure_frontend
    exec .venv/bin/kibitz serve "$@"
    ;;
  test)
    shift
    ensure_venv "[test]"
    ensure_stockfish
    ensure_espeak
    ensure_chromium
    ensure_postgres
    ensure_kafka
    ensure_promtool
    ensure_keda_schema
    ensure_frontend check
    # The quality gates run beside the suite (they are CPU work while the suite mostly waits
    # on processes); their output follows the suite's, and either failing fails the command.
    gates_log=$(mktemp)
    (
      set -e
      echo "== ruff"; .venv/bin/ruff check src tests bench; .venv/bin/ruff format --check src tests bench
      echo "== mypy"; .venv/bin/mypy
      echo "== layering"; .venv/bin/lint-imports --no-cache
      echo "== alert rules"; promtool check rules deploy/prometheus/alerts.yml
      (cd deploy/prometheus && promtool test rules alerts.test.yml)
      echo "== front end: tsc"; (cd frontend && npm run -s check)
    ) > "$gates_log" 2>&1 &
    gates=$!
    # The suite runs in worker processes (tests/conftest.py says how it is spread over them);
    # the tests that measure latency run afterwards, alone on the machine.
    echo "== pytest (set-up took ${SECONDS}s)"
    suite=0
    .venv/bin/pytest -n "${KIBITZ_TEST_WORKERS:-4}" --dist loadgroup --no-loadscope-reorder -m "not solo" "$@" || suite=$?
    gated=0
    wait "$gates" || gated=$?
    cat "$gates_log"; rm -f "$gates_log"
    [ "$gated" -eq 0 ] || { echo "== the quality gates failed" >&2; exit "$gated"; }
    [ "$suite" -eq 0 ] || exit "$suite"
    echo "== pytest: latency, alone (${SECONDS}s so far)"
    # Only the files that hold such tests are collected (unless paths were given): collecting
    # the whole suite again costs seconds.
    solo=("$@"); given_path=0
    for arg in "$@"; do case "$arg" in -*) ;; *) given_path=1 ;; esac; done
    if [ "$given_path" -eq 0 ]; then
      mapfile -t files < <(grep -rl --include='test_*.py' 'pytest.mark.solo' tests)
      solo+=("${files[@]}")
    fi
    .venv/bin/pytest -m solo "${solo[@]}" || { rc=$?; [ "$rc" -eq 5 ] || exit "$rc"; }  # 5: none chosen
    echo "== all passed in ${SECONDS}s"
    ;;
  *)
    echo "usage: ./dev.sh serve [kibitz serve options] | ./dev.sh test [pytest options]" >&2
    exit 2
    ;;
esac
