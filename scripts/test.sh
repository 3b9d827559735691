#!/usr/bin/env bash
# The workspace's tests, as `make test` runs them: every crate, every target, with the
# arguments given (e.g. `--features rafter/failpoints`), not stopping at the first failure.
#
# A test that fails is run again on its own, at most twice. The run passes only if every
# such test then passes, and it ends with a "flaky" report naming each test that needed a
# second run, so a flaky test is seen and fixed rather than hidden. A target that failed
# without naming a failed test (a crash, a build error, a failed doctest) fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] && exit 0

# `test <name> ... FAILED` lines; doctests ("path - (line N)") are not run again.
mapfile -t failed < <(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log" | grep -v ' - (line ' | sort -u)
targets=$(grep -c '^error: test failed' "$log" || true)
binaries_with_failures=$(awk '/^     Running /{bin=$0} /^test .* \.\.\. FAILED$/ && !/ - \(line /{print bin}' "$log" | sort -u | wc -l)
if [ "${#failed[@]}" = 0 ] || [ "$targets" -gt "$binaries_with_failures" ]; then
	echo "test.sh: a test target failed without a failed test to run again (exit $status)" >&2
	exit "$status"
fi

flaky=()
broken=()
for name in "${failed[@]}"; do
	passed=0
	for attempt in 1 2; do
		echo "test.sh: running again ($attempt of 2): $name"
		# Every lib, bin and test target, each keeping only this exact name; with the same
		# features as the first run, so nothing is rebuilt.
		if cargo test --workspace "$@" --lib --bins --tests -- --exact "$name"; then
			passed=1
			break
		fi
	done
	if [ "$passed" = 1 ]; then flaky+=("$name"); else broken+=("$name"); fi
done

echo
if [ "${#flaky[@]}" -gt 0 ]; then
	echo "test.sh: FLAKY: failed, then passed when run again on its own:"
	printf '  %s\n' "${flaky[@]}"
fi
if [ "${#broken[@]}" -gt 0 ]; then
	echo "test.sh: FAILED, also when run again on its own:"
	printf '  %s\n' "${broken[@]}"
	exit 1
fi
exit 0
