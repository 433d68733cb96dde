#!/usr/bin/env bash
# The whole test suite: library/notebook sync, every notebook's tests, pytest (with every docs page's
# examples run in a fresh interpreter, tests/test_page_examples.py), and the docs site with its search
# index and its browser check. Any failure stops the script with a non-zero exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
# small matrices: one BLAS thread per process keeps the parallel notebook runs from oversubscribing the cores
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

echo "== 1/5 notebooks and library in sync"
snapshot=$(mktemp -d)
cp -r minima "$snapshot/minima"
cp -r nbs "$snapshot/nbs"
nbdev_export
nbdev_clean
if ! diff -r -x __pycache__ "$snapshot/minima" minima; then
  echo "FAIL: minima/ differs from what nbdev_export writes from nbs/ (run nbdev_export and commit)"; exit 1
fi
if ! diff -r -x .ipynb_checkpoints "$snapshot/nbs" nbs; then
  echo "FAIL: notebooks are not clean (run nbdev_clean and commit)"; exit 1
fi
rm -rf "$snapshot"
python tools/readme.py --check
if [ "${CI:-}" = "true" ] && [ -d .git ] && ! git diff --exit-code --stat -- minima nbs; then
  echo "FAIL: exported library or clean notebooks differ from the committed ones"; exit 1
fi

# the `slow` cells are the long versions of the study and of the optimizer-choice page (the full lr
# grids and seeds that their published pictures come from): MINIMA_SLOW=1 runs them too
flags=()
if [ "${MINIMA_SLOW:-}" = "1" ]; then flags=(--flags slow); fi
echo "== 2/5 notebook tests (nbdev_test, every notebook${flags:+, slow cells included})"
expected=$(find nbs -name '*.ipynb' -not -path '*/.*' -not -name '_*' | wc -l)
log=$(mktemp)
nbdev_test "${flags[@]}" --do_print --n_workers 2 --timing 2>&1 | tee "$log"
ran=$(grep -c '^- Completed' "$log" || true)
if [ "$expected" -eq 0 ] || [ "$ran" -ne "$expected" ]; then
  echo "FAIL: nbdev_test completed $ran notebooks, expected $expected"; exit 1
fi
echo "nbdev_test: $ran notebooks passed"

echo "== 3/5 pytest (the docs pages' examples included)"
# the reference comparisons need torch 2.13: fail here rather than let them skip
python -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.startswith('2.13.0') else 'torch 2.13.0 is required for the reference comparisons, found ' + v)"
set +e
python -m pytest -q
status=$?
set -e
if [ "$status" -eq 5 ]; then echo "FAIL: pytest collected no tests"; exit 1; fi
if [ "$status" -ne 0 ]; then exit "$status"; fi

echo "== 4/5 docs site and its search index (Pagefind)"
python tools/build_docs.py

echo "== 5/5 browser test of the docs site (equations, API tables, search)"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "FAIL: the browser test needs chromium (Debian: apt-get install chromium)"; exit 1
  fi
fi
python tests/browser_test.py
echo "All checks passed."
