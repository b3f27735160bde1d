#!/usr/bin/env bats
# The test harness itself: a private swtpm that is stopped by pid, and fast LUKS2 images.

load helpers

setup() { common_setup; }
teardown() { common_teardown; }

@test "swtpm_start gives a private TPM that answers" {
        swtpm_start
        run tpm2_pcrread sha256:7
        [ "$status" -eq 0 ]
        [[ "$output" == *"7 : 0x0000000000000000000000000000000000000000000000000000000000000000"* ]]
        [[ "$TPM_DIR" == /tmp/cvmcrypt-swtpm.* ]]
}

@test "swtpm_stop stops exactly our swtpm, by pid" {
        swtpm_start
        pid=$(cat "$TPM_DIR/pid")
        kill -0 "$pid"
        swtpm_stop
        ! kill -0 "$pid" 2>/dev/null
        [ -z "$TPM_DIR" ]
}

@test "swtpm_restart keeps persistent state and resets PCRs" {
        swtpm_start
        pcr_extend 7
        tpm2_createprimary -C o -g sha256 -G ecc256 -c "$TEST_TMP/srk.ctx" >/dev/null
        tpm2_evictcontrol -C o -c "$TEST_TMP/srk.ctx" 0x81000001 >/dev/null
        swtpm_restart
        run tpm2_getcap handles-persistent
        [[ "$output" == *0x81000001* ]]
        run tpm2_pcrread sha256:7
        [[ "$output" == *"0x0000000000000000000000000000000000000000000000000000000000000000"* ]]
}

@test "make_luks_image makes a LUKS2 volume with a fast PBKDF" {
        make_luks_image "$TEST_TMP/img" "pass word"
        run cryptsetup luksDump "$TEST_TMP/img"
        [[ "$output" == *"Version:       	2"* ]]
        [[ "$output" == *"PBKDF:      pbkdf2"* ]]
        [[ "$output" == *"Iterations: 1000"* ]]
        passphrase_opens "$TEST_TMP/img" "pass word"
        ! passphrase_opens "$TEST_TMP/img" "wrong"
}
