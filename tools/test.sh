#!/bin/bash
# The README's test command: install, build, run every test, and print the
# test runner's summary plus a final "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh || exit 1

log=$(mktemp /tmp/blizzard-test.XXXXXX.log)
bazel test //... --test_summary=short "$@" 2>&1 | tee "$log" |
  grep -v -E 'linux-sandbox|process-wrapper'
rc=${PIPESTATUS[0]}

# One summary line per test target: "//pkg:target  (cached) PASSED in 1.2s".
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -E '^//[^ ]+ +' "$log" |
  grep -cE ' (FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE|FAILED TO BUILD)')
if [[ $rc -ne 0 && $failed -eq 0 ]]; then
  failed=1  # The build itself failed before any test could run.
fi
rm -f "$log"
echo "${passed} passed, ${failed} failed"
exit $rc
