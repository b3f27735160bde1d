#!/usr/bin/env bash
# Installs what the tests need, builds, and runs every tier: unit and bats tests, the qemu e2e tests,
# the unit and bats tests again under ASan+UBSan, the fuzz targets, make distcheck and the Debian
# packages (built, lintian, file list). Ends with
# "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
logs=$(mktemp -d /tmp/cvmcrypt-test-logs.XXXXXX)
passed=0 failed=0 skipped=0

tally() { # tally TIER PASSED FAILED SKIPPED
        passed=$((passed + $2)) failed=$((failed + $3)) skipped=$((skipped + $4))
        printf '== %-12s %d passed, %d failed, %d skipped\n' "$1" "$2" "$3" "$4"
}

# A step that is one test: its name, then the command.
step() {
        local name=$1
        shift
        if "$@" >"$logs/$name.log" 2>&1; then
                tally "$name" 1 0 0
        else
                echo "-- $name failed; last lines of $logs/$name.log:"
                tail -n 40 "$logs/$name.log"
                tally "$name" 0 1 0
                return 1
        fi
}

# Unit tests through automake: count the TAP results in the .trs files.
unit_tier() { # unit_tier NAME BUILDDIR
        local name=$1 dir=$2 p f s
        make -C "$dir" -j"$(nproc)" check >"$logs/$name.log" 2>&1
        p=$(cat "$dir"/tests/unit/*.trs 2>/dev/null | grep -c '^:test-result: \(PASS\|XFAIL\)')
        f=$(cat "$dir"/tests/unit/*.trs 2>/dev/null | grep -c '^:test-result: \(FAIL\|XPASS\|ERROR\)')
        s=$(cat "$dir"/tests/unit/*.trs 2>/dev/null | grep -c '^:test-result: SKIP')
        if [ "$f" -gt 0 ] || ! grep -q '^# FAIL: *0' "$logs/$name.log"; then
                grep -h '^not ok\|^# failed at\|^ERROR\|^FAIL' "$dir"/tests/unit/*.log | head -n 60
                [ "$f" -gt 0 ] || f=1
        fi
        tally "$name" "$p" "$f" "$s"
}

# bats: count the TAP lines; skips must say why (bats prints the reason). The files run side by
# side, one per core (each file's tests in order); a test that never reported counts as failed.
bats_tier() { # bats_tier NAME BINARY
        local name=$1 p f s planned
        CVMCRYPT=$2 bats --tap --jobs "$(nproc)" --no-parallelize-within-files tests/bats >"$logs/$name.log" 2>&1
        p=$(grep -c '^ok ' "$logs/$name.log")
        s=$(grep -c '^ok .* # skip' "$logs/$name.log")
        f=$(grep -c '^not ok ' "$logs/$name.log")
        planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$logs/$name.log" | head -n 1)
        if [ "$((p + f))" -lt "${planned:-0}" ]; then
                echo "-- $name: $((planned - p - f)) of $planned tests never reported"
                f=$((f + planned - p - f))
        fi
        p=$((p - s))
        grep '# skip' "$logs/$name.log"
        if [ "$f" -gt 0 ] || [ "$p" -eq 0 ]; then
                grep -A 15 '^not ok ' "$logs/$name.log" | head -n 150
                [ "$f" -gt 0 ] || f=1
        fi
        tally "$name" "$p" "$f" "$s"
}

# e2e: each tests/e2e/test-*.sh boots VMs (qemu TCG, swtpm vTPM) and is one test. Nothing here is
# skipped: a missing qemu, kernel or busybox makes the test fail.
e2e_tier() { # e2e_tier BINARY
        local t name p=0 f=0 start=$SECONDS
        for t in tests/e2e/test-*.sh; do
                [ -f "$t" ] || continue
                name=${t##*/test-}
                name=${name%.sh}
                if CVMCRYPT=$1 timeout -k 10 "${E2E_TEST_TIMEOUT:-600}" bash "$t" >"$logs/e2e-$name.log" 2>&1; then
                        p=$((p + 1))
                        grep -h '^e2e: .*\(PASS in\|total\)' "$logs/e2e-$name.log"
                else
                        f=$((f + 1))
                        echo "-- e2e test $name failed; last lines of $logs/e2e-$name.log:"
                        tail -n 100 "$logs/e2e-$name.log"
                fi
        done
        if [ $((p + f)) -eq 0 ]; then
                echo "-- e2e: no tests/e2e/test-*.sh found"
                f=1
        fi
        echo "== e2e tier took $((SECONDS - start)) s"
        tally e2e "$p" "$f" 0
}

# pkg: tests/pkg/test-deb.sh builds the Debian packages from a copy of the tree, runs lintian and
# checks the installed file list; it prints "N passed, N failed".
pkg_tier() {
        local p f
        bash tests/pkg/test-deb.sh >"$logs/pkg.log" 2>&1
        p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$logs/pkg.log" | tail -n 1)
        f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$logs/pkg.log" | tail -n 1)
        if [ -z "$p" ] || [ "$f" != 0 ]; then
                grep -B 2 -A 20 'FAIL\|^E: ' "$logs/pkg.log" | head -n 80
                [ -n "$f" ] && [ "$f" != 0 ] || f=1
        fi
        tally pkg "${p:-0}" "$f" 0
}

# The sanitizer's report, or the log's end when libFuzzer stopped on its own (a missing corpus).
# -a: a crash report quotes the input, which may hold binary bytes.
fuzz_failure() {
        if grep -aq 'ERROR\|runtime error\|Test unit written' "$1"; then
                grep -a -A 30 'ERROR\|runtime error\|Test unit written' "$1" | head -n 60
        else
                tail -n 20 "$1"
        fi
}

# One target's run; its exit status goes to $logs/fuzz-NAME.rc.
fuzz_run() {
        local name=${1##*/fuzz-} corpus rc=0
        corpus=$(mktemp -d "$logs/corpus-$name.XXXXXX")
        "$1" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "$corpus" \
                "tests/fuzz/corpus/$name" >"$logs/fuzz-$name.log" 2>&1 || rc=$?
        echo "$rc" >"$logs/fuzz-$name.rc"
}

# The targets run two at a time, one per core: each still fuzzes for FUZZ_SECONDS on a core.
fuzz_tier() {
        local t name running=0 p=0 f=0
        for t in build-fuzz/tests/fuzz/fuzz-*; do
                [ -x "$t" ] && [ "${t%.o}" = "$t" ] || continue
                fuzz_run "$t" &
                running=$((running + 1))
                if [ "$running" -ge "$(nproc)" ]; then
                        wait -n || true
                        running=$((running - 1))
                fi
        done
        wait
        for t in build-fuzz/tests/fuzz/fuzz-*; do
                [ -x "$t" ] && [ "${t%.o}" = "$t" ] || continue
                name=${t##*/fuzz-}
                if [ "$(cat "$logs/fuzz-$name.rc" 2>/dev/null)" = 0 ]; then
                        p=$((p + 1))
                else
                        f=$((f + 1))
                        echo "-- fuzz target $name failed:"
                        fuzz_failure "$logs/fuzz-$name.log"
                fi
        done
        tally fuzz "$p" "$f" 0
}

echo "== installing Debian packages"
scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

if step build scripts/build.sh build; then
        unit_tier unit build
        bats_tier bats "$top/build/cvmcrypt"
        e2e_tier "$top/build/cvmcrypt"
        step distcheck make -C build distcheck
        pkg_tier
fi
if step build-asan scripts/build.sh build-asan --enable-sanitizers; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        unit_tier unit-asan build-asan
        bats_tier bats-asan "$top/build-asan/cvmcrypt"
        unset ASAN_OPTIONS UBSAN_OPTIONS
fi
if step build-fuzz env CC=clang scripts/build.sh build-fuzz --enable-fuzzing; then
        fuzz_tier
fi

echo "logs: $logs"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
