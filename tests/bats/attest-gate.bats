#!/usr/bin/env bats
# The TPM-enforced attestation gate: `enroll --attest` seals to the gate PCR value that exists only
# after the attested event, and `unlock` attests first. The vTPM is a private swtpm made Azure-like
# by tests/fixtures/make-hcl-vtpm behind tests/tpm/tcti-paravisor.c (see attest-fetch.bats);
# swtpm_restart is a reboot: PCRs back to zero, NV and the AK kept.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
        CHAIN=$(mktemp -d /tmp/cvmcrypt-chain.XXXXXX)
        sh "$BATS_TEST_DIRNAME/../fixtures/make-test-chain" "$CHAIN" >/dev/null 2>&1
        export CHAIN
}

teardown_file() {
        rm -rf "$CHAIN"
}

setup() {
        common_setup
        BUILD=$(dirname "$CVMCRYPT")
        FIXTURE=$BUILD/tests/fixtures/snp-fixture
        for f in "$FIXTURE" "$BUILD/tests/tpm/libtss2-tcti-cvmparavisor.so"; do
                [ -e "$f" ] || { echo "$f not built: run make check first" >&2; return 1; }
        done
        mkdir "$TEST_TMP/certs"
        cp "$CHAIN/vcek-milan.pem" "$TEST_TMP/certs/vcek.pem"
        cp "$CHAIN/ask-milan.pem" "$TEST_TMP/certs/ask.pem"
        printf '{"debug": false}\n' >"$TEST_TMP/policy.json"
        LOG=$TEST_TMP/run/tpm2-measure.log
        CONF=$TEST_TMP/cvmcrypt.conf
        write_conf
        IMG=$TEST_TMP/disk.img
        make_luks_image "$IMG" "build pass"
        printf '%s' "build pass" >"$TEST_TMP/pass"
}

teardown() {
        common_teardown
}

# write_conf [POLICY]: the configuration (the TPM comes from --tpm: its socket path changes with
# every swtpm_restart, and the configuration file is measured).
write_conf() {
        printf 'attest = hcl-nv\nattest-certs = %s\npolicy = %s\nanchors = %s\nevent-log = %s\n' "$TEST_TMP/certs" \
                "${1:-$TEST_TMP/policy.json}" "$CHAIN/anchors" "$LOG" >"$CONF"
}

# vtpm [make-hcl-vtpm OPTIONS]: a private swtpm with the Azure layout.
vtpm() {
        swtpm_start
        sh "$BATS_TEST_DIRNAME/../fixtures/make-hcl-vtpm" "$FIXTURE" "$CHAIN" "$TEST_TMP/vtpm" "$@"
}

# c ARGS...: cvmcrypt with the test's configuration, behind the paravisor shim.
c() {
        LD_LIBRARY_PATH=$BUILD/tests/tpm${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$CVMCRYPT" --config "$CONF" \
                "${CMDLINE_OPT[@]}" --tpm "cvmparavisor:refresh=$TEST_TMP/vtpm/refresh:$TPM_TCTI" "$@"
}

pcr15() {
        tpm2_pcrread sha256:15 | sed -n 's/.*0x\([0-9A-F]*\)$/\1/p' | tr A-F a-f
}

enroll_attest() {
        run --separate-stderr c enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" --pcrs 15 --attest --json
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq 0 ]
        [ "$(jq -c .pcrs <<<"$output")" = "[15]" ]
        [ "$(jq -r .attest <<<"$output")" = "$(token_field "$IMG" 0 attest)" ]
}

@test "enroll --attest seals to the predicted attested gate value; measure + unlock attests, then unseals" {
        vtpm
        enroll_attest
        # The gate PCR is bound to what predict says, attested event included.
        [ "$(cryptsetup token export --token-id 0 "$IMG" | jq -r '."tpm2-pcr-values"."15"')" = \
                "$(c predict | cut -d= -f2)" ]
        swtpm_restart
        c measure
        run --separate-stderr c unlock "$IMG" --test
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq 0 ]
        [ "$output" = "$IMG: key verified (not activated)" ]
        [[ "$stderr" == *"unlock: attested: HCL report from vTPM NV 0x01400001: Milan VCEK, chain SEV-Milan <- ARK-Milan, vTPM AK and quote checked; policy sha256 $(token_field "$IMG" 0 attest)"* ]]
        # predict equals the live gate PCR after measure + attest.
        [ "$(c predict)" = "15=$(pcr15)" ]
        [ "$(tr -d '\036' <"$LOG" | jq -r .content.event | tr '\n' ' ')" = "binary config anchors policy attested " ]
        c measure --verify
        # The gate already holds the attested value: a second unlock does not attest again.
        run --separate-stderr c unlock "$IMG" --test
        [ "$status" -eq 0 ]
        [[ "$stderr" != *attested* ]]
        [ "$(tr -d '\036' <"$LOG" | jq -r .content.event | grep -c attested)" -eq 1 ]
}

@test "a report with a bad signature: attestation fails (exit 5) and the TPM refuses, naming PCR 15" {
        vtpm --bad-sig
        enroll_attest
        swtpm_restart
        c measure
        before=$(pcr15)
        run --separate-stderr c unlock "$IMG" --test
        echo "status $status, stdout '$output', stderr '$stderr'"
        [ "$status" -eq "$EXIT_ATTESTATION" ]
        [[ "$stderr" == *"unlock: attestation failed: report-signature: report signature invalid"* ]]
        [[ "$stderr" == *"the TPM refused: PCR 15 differs from the sealed policy"* ]]
        # Nothing was extended.
        [ "$(pcr15)" = "$before" ]
        [ "$(tr -d '\036' <"$LOG" | jq -r .content.event | grep -c attested || true)" -eq 0 ]
}

@test "a report that violates the policy: attestation fails and the TPM refuses" {
        vtpm
        printf '{"vm-configuration": {"console-enabled": false}}' >"$TEST_TMP/strict.json"
        write_conf "$TEST_TMP/strict.json"
        enroll_attest
        swtpm_restart
        c measure
        run --separate-stderr c unlock "$IMG" --test
        echo "status $status, stderr '$stderr'"
        [ "$status" -eq "$EXIT_ATTESTATION" ]
        [[ "$stderr" == *"attestation failed: vm-configuration: console-enabled is true, the policy demands false"* ]]
        [[ "$stderr" == *"the TPM refused: PCR 15 differs from the sealed policy"* ]]
}

@test "unlock before measure says so, and the TPM refuses" {
        vtpm
        enroll_attest
        swtpm_restart
        run --separate-stderr c unlock "$IMG" --test
        echo "status $status, stderr '$stderr'"
        [ "$status" -ne 0 ]
        [[ "$stderr" == *"cvmcrypt has not measured itself in this boot (no cvmcrypt:binary record for PCR 15 in $LOG): run \`cvmcrypt measure\` first"* ]]
        [[ "$stderr" == *"the TPM refused: PCR 15 differs from the sealed policy"* ]]
}

@test "after cap the token no longer unseals, and no second attested event is recorded" {
        vtpm
        enroll_attest
        swtpm_restart
        c measure
        c unlock "$IMG" --test
        c cap
        run --separate-stderr c unlock "$IMG" --test
        echo "status $status, stderr '$stderr'"
        [ "$status" -ne 0 ]
        [[ "$stderr" == *"PCR 15 was capped in this boot (event log record 5)"* ]]
        [[ "$stderr" == *"the TPM refused: PCR 15 differs from the sealed policy"* ]]
        # Capped before attesting: attestation after the cap changes nothing either.
        swtpm_restart
        rm "$LOG"
        c measure
        c cap
        run --separate-stderr c unlock "$IMG" --test
        [ "$status" -ne 0 ]
        [[ "$stderr" == *"PCR 15 was capped in this boot"* ]]
}

@test "the TPM enforces the gate: a token stripped of its attest field still needs the attested PCR" {
        vtpm
        enroll_attest
        token_edit "$IMG" 0 "del t['attest']"
        swtpm_restart
        c measure
        run --separate-stderr c unlock "$IMG" --test
        echo "status $status, stderr '$stderr'"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$stderr" == *"PCR 15 differs from the sealed policy"* ]]
}

@test "a token that names another policy than the configuration's is refused before any report" {
        vtpm
        enroll_attest
        printf '{"debug": false, "vmpl": [0]}' >"$TEST_TMP/other.json"
        write_conf "$TEST_TMP/other.json"
        swtpm_restart
        c measure
        run --separate-stderr c unlock "$IMG" --test
        echo "status $status, stderr '$stderr'"
        [ "$status" -eq "$EXIT_ATTESTATION" ]
        [[ "$stderr" == *"token 0 demands attestation against the policy sha256 $(token_field "$IMG" 0 attest), but policy= $TEST_TMP/other.json is sha256"* ]]
}

@test "enroll --attest: misuse" {
        vtpm
        run --separate-stderr c enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" --binary "$CVMCRYPT"
        [ "$status" -eq "$EXIT_USAGE" ]
        [[ "$stderr" == *"enroll: --binary, --anchors and --policy are for --attest"* ]]
        run --separate-stderr c enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" --attest --pcrs 7,15 --pcr-value "15=$(printf '%064d' 1)"
        [ "$status" -ne 0 ]
        [[ "$stderr" == *"--pcr-value 15 conflicts with --attest, which predicts the gate PCR"* ]]
        printf 'policy = %s\n' "$TEST_TMP/policy.json" >"$CONF"
        run --separate-stderr c enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" --attest
        [ "$status" -ne 0 ]
        [[ "$stderr" == *"enroll --attest: the configuration does not attest (set attest= and policy=)"* ]]
        printf 'attest = hcl-nv\n' >"$CONF"
        run --separate-stderr c enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" --attest
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$stderr" == *"attest=hcl-nv needs policy="* ]]
        # Nothing was enrolled by any of these.
        [ "$(cryptsetup luksDump "$IMG" | grep -c cvmcrypt-tpm2 || true)" -eq 0 ]
}
