#!/usr/bin/env bash
# The README's two Quickstart commands.
#   ./run.sh        install what is missing into .venv/, then run the default experiment
#   ./run.sh test   install what is missing into .venv/, then run lint + the whole test suite
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
  echo "==> ruff"
  ruff check src tests benchmarks
  ruff format --check src tests benchmarks
  echo "==> pytest"
  set +e
  python -m pytest -q --durations=10
  rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
  exit "$rc"
}

run_default() {
  # Until the Snakemake pipeline lands, the default run is the synthetic comparison of every
  # method the library has (one seed), through the `mcr` CLI.
  local out=data/runs/synthetic params=(--params params/data.yaml --params params/train.yaml)
  for m in m1 m2; do
    mcr train --dataset synthetic --method "unimodal_$m" "${params[@]}" --out "$out/unimodal_$m/seed0"
  done
  local uni=(--unimodal "m1=$out/unimodal_m1/seed0" --unimodal "m2=$out/unimodal_m2/seed0")
  for method in joint multiloss ensemble uni_pre_frozen uni_pre_finetuned mcr; do
    mcr train --dataset synthetic --method "$method" "${params[@]}" "${uni[@]}" \
      --out "$out/$method/seed0"
  done
  for run in "$out"/*/seed0; do
    mcr evaluate --run "$run" --reference "m1=$out/unimodal_m1/seed0" \
      --reference "m2=$out/unimodal_m2/seed0"
  done
}

ensure_venv
case "${1:-run}" in
  test) run_tests ;;
  run) run_default ;;
  *) echo "usage: ./run.sh [test]" >&2; exit 2 ;;
esac
