#!/usr/bin/env bats
# cvmcrypt boot outside the VM: the plan (--dry-run) that the initramfs generators read, and the
# refusal to run the sequence on a system that is not in its initrd. The sequence itself boots in
# tests/e2e/test-boot.sh.

load helpers

setup() {
        common_setup
        CVM_CONFIG=$TEST_TMP/cvmcrypt.conf
        printf 'attest = tsm\npolicy = /etc/cvmcrypt/policy.json\nattest-certs = /etc/cvmcrypt/certs\nanchors = /etc/cvmcrypt/anchors\nvolume = UUID=0f2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b\ndevice-timeout = 5\n' >"$CVM_CONFIG"
}
teardown() { common_teardown; }

@test "the plan names each step; --no-tempdisk leaves the temp disk to its service" {
        run cvm boot --dry-run
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"attest    fresh report from tsm, verified against anchors /etc/cvmcrypt/anchors and policy /etc/cvmcrypt/policy.json; passed: cvmcrypt:attested into PCR 15"* ]]
        [[ "$output" == *"unlock    UUID=0f2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b as luks-UUID"* ]]
        [[ "$output" == *"tempdisk  detect by identity"* ]]
        [[ "$output" == *"cap       extend PCR 15 with each unlocked volume's identity and cvmcrypt:boot-done"* ]]
        run cvm boot --dry-run --no-tempdisk
        [[ "$output" == *"tempdisk  left to cvmcrypt-tempdisk.service (--no-tempdisk)"* ]]
        printf 'attest = none\n' >"$CVM_CONFIG"
        run cvm boot --dry-run
        [[ "$output" == *"attest    skipped: attest=none"* ]]
}

@test "the JSON plan gives the generators the files boot reads" {
        run cvm boot --dry-run --json
        [ "$status" -eq 0 ]
        [ "$(jq -r '[.anchors, .policy, .attest, ."attest-certs", ."device-timeout"] | join(",")' <<<"$output")" = \
                "/etc/cvmcrypt/anchors,/etc/cvmcrypt/policy.json,tsm,/etc/cvmcrypt/certs,5" ]
        [ "$(jq -r '[.steps[].step] | join(",")' <<<"$output")" = measure,attest,unlock,tempdisk,cap ]
        : >"$CVM_CONFIG"
        run cvm boot --dry-run --json
        [ "$(jq -r '[.policy, .attest, ."attest-certs"] | map(tostring) | join(",")' <<<"$output")" = "null,none,null" ]
}

@test "--no-tempdisk is an option of boot alone" {
        bats_require_minimum_version 1.5.0
        run --separate-stderr cvm tempdisk --no-tempdisk
        [ "$status" -eq "$EXIT_USAGE" ]
        [[ "$stderr" == *"tempdisk: unknown option '--no-tempdisk'"* ]]
}
