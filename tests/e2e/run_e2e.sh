#!/usr/bin/env bash
# The end-to-end lane on the real agent CLIs (called by .ci/run after the unit tests).
#
#   bash tests/e2e/run_e2e.sh [--latest] [--no-retry] [pytest args...]
#
# 1. installs the pinned CLIs into ~/.cache/alice-trio-e2e/<hash of tests/e2e/clis/*> (reused when
#    present; a CLI whose install fails is skipped, with its reason printed),
# 2. runs `pytest -m e2e tests/e2e` against the fake model server,
# 3. re-runs the failed tests once (printed as RETRY). The summary counts every test that failed
#    and then passed as a FLAKE — `e2e: FLAKY n: names` — a bug to find, not noise. The lane fails
#    if a test failed on its last try or if any process of the lane is still alive afterwards.
#
# --no-retry (or ALICE_TRIO_E2E_RETRY=0): no second try; any failure fails the lane. This is how
#    to check that the lane passes every time (e.g. three runs in a row).
# --latest: the canary. Installs npm's latest version of every CLI (Kimi Code with the pinned
#    Node 22; legacy kimi-cli stays pinned) into ~/.cache/alice-trio-e2e/latest-<hash>/ beside
#    the pinned set, runs the same tests on them and prints a table pinned vs latest per CLI.
#    Not part of blocking CI: the registry decides what "latest" is.
#
# Knobs: ALICE_TRIO_E2E_INSTALL_BUDGET (seconds, default 1200), ALICE_TRIO_E2E_TEST_BUDGET
# (seconds, default 1800), ALICE_TRIO_E2E_CACHE (cache root), ALICE_TRIO_E2E_PYTHON (a python
# >= 3.12 for legacy kimi-cli). Other arguments go to pytest (e.g. -k claude).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
INSTALL_BUDGET=${ALICE_TRIO_E2E_INSTALL_BUDGET:-1200}
TEST_BUDGET=${ALICE_TRIO_E2E_TEST_BUDGET:-1800}
RETRY=${ALICE_TRIO_E2E_RETRY:-1}
LATEST=0
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --latest) LATEST=1 ;;
    --no-retry) RETRY=0 ;;
    *) ARGS+=("$arg") ;;
  esac
done
lane_start=$(date +%s)
# every CLI env's ALICE_E2E_MARKER starts with this lane's id (cli_env.py), so the final check
# finds this lane's processes only — not those of another e2e run on the same machine
ALICE_TRIO_E2E_LANE="lane$$x$(date +%s%N)x"
export ALICE_TRIO_E2E_LANE

PINNED_MANIFEST=$("$PY" tests/e2e/install_clis.py --print-manifest)
if [ "$LATEST" -eq 1 ]; then
  echo "== e2e canary: installing the latest published CLIs (budget ${INSTALL_BUDGET}s)"
  if ! "$PY" tests/e2e/install_clis.py --latest --budget "$INSTALL_BUDGET"; then
    echo "e2e: FAILED: could not install the latest CLIs"
    exit 1
  fi
  ALICE_TRIO_E2E_MANIFEST=$("$PY" tests/e2e/install_clis.py --latest --print-manifest)
  export ALICE_TRIO_E2E_MANIFEST
else
  echo "== e2e: installing the pinned CLIs (budget ${INSTALL_BUDGET}s)"
  if ! "$PY" tests/e2e/install_clis.py --budget "$INSTALL_BUDGET"; then
    echo "e2e: the installer itself failed; every CLI without a manifest entry is skipped"
  fi
fi
install_end=$(date +%s)

# One line per CLI the tests will skip, with the reason the install recorded.
"$PY" - <<'EOF'
import json, os, sys
sys.path.insert(0, "tests/e2e")
import install_clis
path = os.environ.get("ALICE_TRIO_E2E_MANIFEST") or install_clis.manifest_path()
try:
    manifest = json.loads(open(path).read())
except (OSError, ValueError):
    print("e2e: SKIP all providers: no install manifest was written")
    raise SystemExit(0)
for cli in install_clis.ALL_CLIS:
    info = manifest["clis"].get(cli)
    if info is None:
        print(f"e2e: SKIP {cli}: not installed")
    elif not info["ok"]:
        print(f"e2e: SKIP {cli}: install failed: {info['reason']}")
EOF

echo "== e2e: pytest -m e2e tests/e2e (budget ${TEST_BUDGET}s)"
# SIGINT first: pytest-trio cancels the running test, and the engine reaps the CLI's group.
CACHE_DIR=$(mktemp -d /tmp/alice-trio-e2e-pytest.XXXXXX)
FIRST="$CACHE_DIR/first.json"
SECOND="$CACHE_DIR/retry.json"
ALICE_TRIO_E2E_RESULTS="$FIRST" timeout --signal=INT --kill-after=60 "$TEST_BUDGET" \
  "$PY" -m pytest -m e2e tests/e2e -q -o cache_dir="$CACHE_DIR" -rsx --durations=10 ${ARGS[@]+"${ARGS[@]}"}
rc=$?
[ "$rc" -eq 124 ] && echo "e2e: FAILED: the tests ran out of their ${TEST_BUDGET}s budget"
if [ "$rc" -eq 1 ] && [ "$RETRY" != "0" ]; then
  # Real CLIs on a loaded 2-core machine: a failed test gets one more try, said out loud and
  # counted as FLAKY in the summary when it passes. A test that fails twice fails the lane.
  echo "e2e: RETRY: re-running the failed tests once (their first failures are printed above)"
  ALICE_TRIO_E2E_RESULTS="$SECOND" timeout --signal=INT --kill-after=60 "$TEST_BUDGET" \
    "$PY" -m pytest -m e2e tests/e2e -q -o cache_dir="$CACHE_DIR" --last-failed -rsx ${ARGS[@]+"${ARGS[@]}"}
  rc=$?
fi

echo "== e2e: summary"
if [ -f "$SECOND" ]; then
  "$PY" tests/e2e/lane_report.py summary "$FIRST" "$SECOND"
else
  "$PY" tests/e2e/lane_report.py summary "$FIRST"
fi
if [ "$LATEST" -eq 1 ]; then
  "$PY" tests/e2e/lane_report.py table "$PINNED_MANIFEST" "$ALICE_TRIO_E2E_MANIFEST" "$FIRST" \
    "$([ -f "$SECOND" ] && echo "$SECOND")"
fi
rm -rf "$CACHE_DIR"

# Nothing of the lane may outlive it: every CLI env carries ALICE_E2E_MARKER=<lane id>...
"$PY" - <<'EOF' || rc=1
import os, signal
me = os.getpid()
needle = b"ALICE_E2E_MARKER=" + os.environ["ALICE_TRIO_E2E_LANE"].encode()
left = []
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) == me:
        continue
    try:
        env = open(f"/proc/{name}/environ", "rb").read().split(b"\0")
        state = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()[0]
        cmd = open(f"/proc/{name}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        continue
    if state != "Z" and any(e.startswith(needle) for e in env):
        left.append((int(name), cmd))
for pid, cmd in left:
    print(f"e2e: FAILED: process left behind: {pid} {cmd[:200]}")
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
raise SystemExit(1 if left else 0)
EOF

end=$(date +%s)
echo "e2e: install $((install_end - lane_start))s, tests $((end - install_end))s, total $((end - lane_start))s; exit $rc"
exit "$rc"
