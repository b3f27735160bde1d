#!/usr/bin/env bats
# Crash safety of enroll, reseal and recover: each run is killed with SIGKILL at its K-th write
# system call (write or pwrite64: every libcryptsetup header and keyslot write, and every TPM
# command), for every K the full run makes, by strace's fault injection; the binary is the
# production one. After each kill the volume must still open with the recovery key (or, for
# enroll, the passphrase) and through the TPM with the old or the new slot; cvmcrypt must accept the
# header an interrupted write leaves. Each test prints its figure: kill points tried, volumes open.

load helpers

setup() {
        command -v strace >/dev/null || skip "strace is not installed (scripts/deps.sh installs it)"
        common_setup
        swtpm_start
        CVM=("$CVMCRYPT" --config "$TEST_TMP/empty.conf" --kernel-cmdline "$TEST_TMP/cmdline" --tpm "$TPM_TCTI")
        BASE=$TEST_TMP/base.img
        IMG=$TEST_TMP/disk.img
        make_luks_image "$BASE" "build pass" 20M
        printf '%s' "build pass" >"$TEST_TMP/pass"
        pcr_extend 7 "secure boot state"
        pcr_extend 8 "kernel command line"
}
teardown() { common_teardown; }

# calls SYSCALL CMD...: how many times a complete run of CMD (it must succeed) makes SYSCALL.
calls() {
        local syscall=$1
        shift
        no_lsan strace -f -o "$TEST_TMP/trace" -e "trace=$syscall" "$@" >/dev/null 2>&1
        grep -cE "^[0-9]+ +$syscall\\(" "$TEST_TMP/trace"
}

# kill_at SYSCALL K CMD...: runs CMD and kills it at its K-th SYSCALL; true if it was killed there.
# (strace counts each system call of an inject set separately, hence one system call at a time.)
kill_at() {
        local syscall=$1 k=$2 rc=0
        shift 2
        no_lsan strace -f -o /dev/null -e "trace=$syscall" -e "inject=$syscall:signal=KILL:when=$k" "$@" \
                >/dev/null 2>&1 || rc=$?
        # A raw swtpm has no resource manager: drop what the killed process had loaded.
        tpm2_flushcontext -t >/dev/null 2>&1 || true
        tpm2_flushcontext -l >/dev/null 2>&1 || true
        [ "$rc" -eq 137 ]
}

tpm_opens() {
        "${CVM[@]}" unlock --test "$IMG" >/dev/null 2>&1
}

recovery_opens() {
        "${CVM[@]}" unlock --recovery --test --recovery-key-file "$TEST_TMP/rk" "$IMG" >/dev/null 2>&1
}

# cryptsetup repairs headers it loads, so it looks at a copy.
passphrase_opens_copy() {
        cp --sparse=always "$IMG" "$TEST_TMP/copy.img"
        passphrase_opens "$TEST_TMP/copy.img" "build pass"
}

# crash_test NAME CHECK PREPARED-IMAGE ARGS...: kills `cvmcrypt ARGS` at every write of a complete
# run, on a fresh copy of PREPARED-IMAGE each time, and runs CHECK after each kill.
crash_test() {
        local name=$1 check=$2 prepared=$3 syscall n k tried=0 open=0
        shift 3
        for syscall in write pwrite64; do
                rm -f "$TEST_TMP/rk-new"
                cp --sparse=always "$prepared" "$IMG"
                n=$(calls "$syscall" "${CVM[@]}" "$@")
                for k in $(seq 1 "$n"); do
                        rm -f "$TEST_TMP/rk-new"
                        cp --sparse=always "$prepared" "$IMG"
                        kill_at "$syscall" "$k" "${CVM[@]}" "$@" || { echo "run not killed at $syscall $k of $n"; return 1; }
                        tried=$((tried + 1))
                        if "$check"; then
                                open=$((open + 1))
                        else
                                echo "$name killed at $syscall $k of $n: the volume no longer opens as required"
                                "${CVM[@]}" -v status "$IMG" || true
                        fi
                done
        done
        echo "# crash test ($name): $tried kill points tried, $open volumes still open" >&3
        [ "$tried" -gt 20 ] && [ "$open" -eq "$tried" ]
}

enroll_check() {
        local out rc=0
        passphrase_opens_copy || return 1
        # No TPM token yet (or a keyslot without one), or a TPM token that works.
        out=$("${CVM[@]}" unlock --test "$IMG" 2>&1) || rc=$?
        [ "$rc" -eq 0 ] || [[ "$out" == *"no cvmcrypt-tpm2 token"* ]]
}

old_or_new_check() {
        recovery_opens && tpm_opens
}

@test "enroll killed at every write: the passphrase still opens, the TPM slot is absent or works" {
        crash_test enroll enroll_check "$BASE" enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" \
                --recovery-key-file "$TEST_TMP/rk-new"
}

@test "reseal killed at every write: the recovery key opens, and the old or the new TPM slot" {
        "${CVM[@]}" enroll "$BASE" --unlock-key-file "$TEST_TMP/pass" --recovery-key-file "$TEST_TMP/rk"
        crash_test reseal old_or_new_check "$BASE" reseal "$IMG" --pcrs 7,8
}

@test "recover killed at every write: the recovery key opens, and the old or the new TPM slot" {
        "${CVM[@]}" enroll "$BASE" --unlock-key-file "$TEST_TMP/pass" --recovery-key-file "$TEST_TMP/rk"
        crash_test recover old_or_new_check "$BASE" recover "$IMG" --recovery-key-file "$TEST_TMP/rk" --pcrs 7,8
}
