#!/usr/bin/env bats
# src/tpm.c on a private swtpm: runs tests/tpm/test-tpm (built by `make check`), which prints TAP.

load helpers

TEST_TPM=${TEST_TPM:-$(dirname "$CVMCRYPT")/tests/tpm/test-tpm}

setup() {
        common_setup
        [ -x "$TEST_TPM" ] || { echo "$TEST_TPM not built: run make check first" >&2; return 1; }
        swtpm_start
}
teardown() { common_teardown; }

@test "tpm module: policy digests, seal/unseal, errors, SRK paths, no leftovers" {
        run "$TEST_TPM" "$TPM_TCTI"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" != *"not ok"* ]]
        [[ "$output" == *"1.."* ]]
}

@test "tpm module: one unseal on the persistent-SRK path takes at most 6 TPM commands" {
        run "$TEST_TPM" "$TPM_TCTI"
        echo "$output"
        [ "$status" -eq 0 ]
        line=$(grep '^# one unseal on the persistent path:' <<<"$output")
        n=$(sed 's/.*path: \([0-9]*\) TPM commands.*/\1/' <<<"$line")
        [ "$n" -ge 5 ] && [ "$n" -le 6 ]
}

@test "tpm module: the test refuses a TPM that is not empty" {
        tpm2_createprimary -C o -g sha256 -G ecc256 -c "$TEST_TMP/p.ctx" >/dev/null
        run "$TEST_TPM" "$TPM_TCTI"
        [ "$status" -eq 77 ]
        [[ "$output" == *"SKIP"* ]]
}
