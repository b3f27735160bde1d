#!/usr/bin/env bats
# Configuration file and kernel command line, through the CLI.

load helpers

setup() {
        common_setup
        CVM_CONFIG=$TEST_TMP/cvmcrypt.conf
        printf 'gate-pcr = 14\ntpm = swtpm:path=/run/test\nvolume = /dev/vda2 root\n' >"$CVM_CONFIG"
}
teardown() { common_teardown; }

@test "boot --dry-run prints the plan from the config file" {
        run cvm boot --dry-run
        [ "$status" -eq 0 ]
        [[ "$output" == *"TPM: swtpm:path=/run/test"* ]]
        [[ "$output" == *"into PCR 14"* ]]
        [[ "$output" == *"unlock    /dev/vda2 as root"* ]]
        [[ "$output" == *"tempdisk  detect by identity"* ]]
}

@test "the kernel command line wins over the file" {
        printf 'BOOT_IMAGE=/vmlinuz cvmcrypt.tempdisk=0 cvmcrypt.gate-pcr=9 quiet\n' >"$TEST_TMP/cmdline"
        run cvm boot --dry-run --json
        [ "$status" -eq 0 ]
        [[ "$output" == *'"gate-pcr":9'* ]]
        [[ "$output" == *'"what":"disabled"'* ]]
}

@test "--tpm wins over file and kernel command line" {
        printf 'cvmcrypt.tpm=device:/dev/tpm0\n' >"$TEST_TMP/cmdline"
        run cvm --tpm swtpm:path=/x boot --dry-run
        [ "$status" -eq 0 ]
        [[ "$output" == *"TPM: swtpm:path=/x "* ]]
}

@test "a bad config line: exit 3, file and line named, nothing else done" {
        bats_require_minimum_version 1.5.0
        printf 'gate-pcr=14\n# ok\ncolour=blue\n' >"$CVM_CONFIG"
        run --separate-stderr cvm boot --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
        [ "$stderr" = "cvmcrypt: $CVM_CONFIG:3: unknown key 'colour'" ]
        [ -z "$output" ]
}

@test "duplicate key, bad value and overlong line are config errors" {
        printf 'gate-pcr=14\ngate-pcr=15\n' >"$CVM_CONFIG"
        run cvm boot --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$output" == *":2: 'gate-pcr' is set twice"* ]]
        printf 'tpm-timeout=forever\n' >"$CVM_CONFIG"
        run cvm boot --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$output" == *":1: bad value for 'tpm-timeout'"* ]]
        printf 'policy=/%s\n' "$(printf 'a%.0s' {1..1100})" >"$CVM_CONFIG"
        run cvm boot --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$output" == *":1: line longer than 1024 bytes"* ]]
}

@test "a bad kernel command line is a config error naming the word" {
        printf 'quiet cvmcrypt.gate-pcr=16\n' >"$TEST_TMP/cmdline"
        run cvm boot --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$output" == *"kernel command line ($TEST_TMP/cmdline), word 2: bad value for 'gate-pcr'"* ]]
}

@test "a missing --config file is an error, a missing default is not" {
        run "$CVMCRYPT" --config "$TEST_TMP/nope.conf" --kernel-cmdline "$TEST_TMP/cmdline" boot --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$output" == *"nope.conf: cannot open"* ]]
}

@test "a config file others can write is refused" {
        chmod 0666 "$CVM_CONFIG"
        run cvm boot --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$output" == *"must be owned by root and not writable by group or others"* ]]
}

@test "control characters from the config never reach the terminal raw" {
        printf 'tpm=\033[2Jx\n' >"$CVM_CONFIG"
        run cvm boot --dry-run
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$output" == *'control character 0x1b'* ]]
        [[ "$output" != *$'\e'* ]]
}
