#!/usr/bin/env bash
# report.html renders in headless Chromium with no console errors (and this check does see
# console errors: a page that logs one must be caught). Skipped, with a message, where
# Chromium is absent; `launch/setup.sh test` (the README's test command) installs it.
# usage: report_render_test.sh HUBEL SOURCE_DIR
set -uo pipefail
HUBEL=$1
SRC=$2
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
  echo "skipped: chromium is not installed (bash launch/setup.sh test installs it)"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
render() {  # render PAGE: the DOM on stdout of $T/dom, the log in $T/log
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$T/profile" \
    --enable-logging=stderr --v=0 --dump-dom "file://$1" > "$T/dom" 2> "$T/log"
}
cat > "$T/bad.html" <<'HTML'
<!DOCTYPE html><html><body><p>x</p><script>console.error("a deliberate error")</script></body></html>
HTML
render "$T/bad.html"
if ! grep -q "CONSOLE.*a deliberate error" "$T/log"; then
  echo "FAIL: this Chromium does not report console messages on stderr; the check below could not fail"
  cat "$T/log"
  exit 1
fi
cd "$SRC"
"$HUBEL" train launch/experiments/spirals_mlp.yaml --run-dir "$T/run" --set train.epochs=3 --set train.log_every=5 > "$T/train.log" 2>&1 ||
  { cat "$T/train.log"; echo "FAIL: training for the report failed"; exit 1; }
render "$T/run/report.html" || { cat "$T/log"; echo "FAIL: chromium failed on report.html"; exit 1; }
failures=0
if grep -q "CONSOLE" "$T/log"; then
  echo "FAIL: console messages while rendering report.html:"
  grep "CONSOLE" "$T/log"
  failures=$((failures + 1))
fi
svgs=$(grep -o "<svg" "$T/dom" | wc -l)
[ "$svgs" -eq 6 ] || { echo "FAIL: the rendered report has $svgs charts, not 6 (loss, accuracy, rate, throughput, wait, per rank)"; failures=$((failures + 1)); }
grep -q "Confusion matrix (test, 1000 samples" "$T/dom" || { echo "FAIL: no confusion matrix in the rendered report"; failures=$((failures + 1)); }
grep -q "<polyline" "$T/dom" || { echo "FAIL: no curves in the rendered report"; failures=$((failures + 1)); }
[ "$failures" -eq 0 ] && echo "ok: report.html renders in $("$CHROMIUM" --version 2>/dev/null | head -1) with no console errors"
exit "$failures"
