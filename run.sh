#!/usr/bin/env bash
# The README's two Quickstart commands.
#   ./run.sh        install what is missing into .venv/, then run the default pipeline
#                   (extra arguments go to snakemake, e.g. ./run.sh -n, ./run.sh --cores 1)
#   ./run.sh test   install what is missing into .venv/, then run lint + the whole test suite
#   ./run.sh quick  a smoke run of a few minutes (workflow/profiles/quick)
#   ./run.sh install  only install what is missing into .venv/ (e.g. on a cluster's login node)
set -euo pipefail
cd "$(dirname "$0")"
export MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1

pip_install() {
  # pip warns once per package about optional local index folders it cannot find; hide that.
  .venv/bin/pip install --quiet "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
}

ensure_venv() {
  # Reinstall when the lock or the project metadata is newer than the last install.
  if [ ! -x .venv/bin/python ] || [ requirements.lock -nt .venv/.installed ] \
     || [ pyproject.toml -nt .venv/.installed ]; then
    echo "==> installing into .venv/ from requirements.lock (about 1-2 minutes the first time)"
    python3 -m venv .venv
    pip_install --upgrade pip
    pip_install -r requirements.lock
    pip_install --no-deps -e .
    touch .venv/.installed
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}

check_cpu_torch_in_ci() {
  # CI must test the CPU build; a CUDA wheel means the pip configuration was bypassed.
  if [ -n "${CI:-}" ]; then
    python -c 'import sys, torch; sys.exit(f"CUDA build of torch in CI: {torch.__version__}" if torch.version.cuda else 0)'
  fi
}

run_tests() {
  check_cpu_torch_in_ci
  echo "==> ruff, snakefmt"
  ruff check src tests benchmarks workflow
  ruff format --check src tests benchmarks workflow
  snakefmt --check Snakefile workflow/
  echo "==> pytest (unit, integration, a tiny end-to-end pipeline run)"
  set +e
  python -m pytest -q -rs --durations=10  # -rs: every skip with its reason
  rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
  exit "$rc"
}

run_default() {
  # The default pipeline: synthetic sweep x every method x 3 seeds, then the report.
  snakemake --workflow-profile workflow/profiles/default "$@"
  # Record the outputs in DVC (dvc.lock + cache) so `dvc repro` / `dvc push` see them. DVC
  # rewrites the files it caches (new mtimes), so refresh Snakemake's view of them afterwards.
  # DVC keeps lock entries of stages that no longer exist (they slow every command): drop them.
  python workflow/tools/smk2dvc.py --prune-lock
  dvc commit --force --quiet
  snakemake --workflow-profile workflow/profiles/default --touch --quiet all
  # One self-contained HTML file (figures inlined, captions, the DAG's provenance): offline.
  snakemake --workflow-profile workflow/profiles/default --report reports/report.html "$@" \
    > logs/report_html.log 2>&1 || echo "warning: the HTML report failed (logs/report_html.log)"
  echo "==> report: reports/report.html (open in a browser), reports/summary.md,"
  echo "    reports/results.csv, reports/figures/"
}

snakemake_pids() {
  # PIDs of Snakemake processes working in this checkout (their cwd is here).
  local here proc
  here="$(pwd -P)"
  for proc in /proc/[0-9]*; do
    [ "$(readlink "$proc/cwd" 2>/dev/null)" = "$here" ] || continue
    if tr '\0' ' ' < "$proc/cmdline" 2>/dev/null | grep -Eq '(^|/)snakemake( |$)'; then
      echo "${proc#/proc/}"
    fi
  done
}

recover_stale_lock() {
  # A run killed hard (SIGKILL, the OOM killer, a pre-empted node, a power cut) leaves
  # Snakemake's lock behind, and Snakemake would refuse the next run. With no Snakemake process
  # left in this checkout the lock is stale: unlock, and the run resumes (incomplete jobs rerun,
  # training resumes from last.pt). With one alive, refuse: two runs must not share outputs.
  [ -n "$(ls -A .snakemake/locks 2>/dev/null)" ] || return 0
  local pids
  pids="$(snakemake_pids | tr '\n' ' ')"
  if [ -n "${pids// /}" ]; then
    echo "error: another Snakemake run is working in this checkout (PID ${pids% }); wait for it" \
      "to finish or stop it, then rerun" >&2
    exit 1
  fi
  echo "==> found the lock of a run that was killed (no Snakemake process is alive here):" \
    "unlocking and resuming"
  snakemake --workflow-profile workflow/profiles/default --unlock --quiet all > /dev/null
}

check_configfiles() {
  # Snakemake's own message for a malformed --configfile names neither the file nor the line:
  # read every --configfile given here as the jobs will (mcr.config.load_params) first.
  local files=() taking=0 arg
  for arg in "$@"; do
    case "$arg" in
      --configfile=*|--configfiles=*) files+=("${arg#*=}"); taking=1 ;;
      --configfile|--configfiles) taking=1 ;;
      -*) taking=0 ;;
      *) if [ "$taking" = 1 ]; then files+=("$arg"); fi ;;
    esac
  done
  [ "${#files[@]}" -eq 0 ] && return 0
  python - "${files[@]}" <<'PY'
import sys

from mcr.config import ConfigError, load_params

try:
    load_params(*sys.argv[1:])
except ConfigError as exc:
    sys.exit(f"error: {exc}")
PY
}

ensure_venv
case "${1:-}" in
  test) run_tests ;;
  install) echo "==> .venv/ is up to date with requirements.lock" ;;
  quick)
    shift; check_configfiles "$@"; recover_stale_lock
    snakemake --workflow-profile workflow/profiles/quick "$@" ;;
  *) check_configfiles "$@"; recover_stale_lock; run_default "$@" ;;
esac
