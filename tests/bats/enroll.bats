#!/usr/bin/env bats
# enroll + unlock --test on a private swtpm and LUKS2 image files.

load helpers

setup() {
        common_setup
        swtpm_start
        IMG=$TEST_TMP/disk.img
        make_luks_image "$IMG" "build pass"
        printf '%s' "build pass" >"$TEST_TMP/pass"
        pcr_extend 7 "secure boot state"
}
teardown() { common_teardown; }

enroll() {
        cvm --tpm "$TPM_TCTI" enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" "$@"
}

unlock_test() {
        cvm --tpm "$TPM_TCTI" unlock "$IMG" --test "$@"
}

@test "enroll then unlock --test" {
        run enroll
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == "Enrolled TPM2 keyslot 1 (token 0), bound to sha256 PCR 7." ]]
        [ "$(token_field "$IMG" 0 type)" = cvmcrypt-tpm2 ]
        run unlock_test
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == "$IMG: key verified (not activated)" ]]
        # The original passphrase still works: enroll adds, never replaces.
        passphrase_opens "$IMG" "build pass"
}

@test "enroll --json and several PCRs in the sha384 bank" {
        pcr_extend 0 firmware
        tpm2_pcrextend "0:sha384=$(printf x | sha384sum | cut -d' ' -f1)"
        tpm2_pcrextend "7:sha384=$(printf y | sha384sum | cut -d' ' -f1)"
        run enroll --pcrs 0,7 --pcr-bank sha384 --json
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == '{"keyslot":1,"token":0,"pcr-bank":"sha384","pcrs":[0,7],"pin":false}' ]]
        run unlock_test
        [ "$status" -eq 0 ]
}

@test "a PCR extended after enroll: refused, naming the PCR" {
        enroll
        before=$(tpm2_pcrread sha256:7 | sed -n 's/.*0x\([0-9A-F]*\)$/\1/p' | tr A-F a-f)
        pcr_extend 7 "new bootloader"
        after=$(tpm2_pcrread sha256:7 | sed -n 's/.*0x\([0-9A-F]*\)$/\1/p' | tr A-F a-f)
        run unlock_test
        echo "$output"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"PCR 7 differs from the sealed policy (sealed $before, now $after)"* ]]
}

@test "a PCR that was never extended is refused at enroll, a predicted value is accepted" {
        run enroll --pcrs 7,9
        [ "$status" -ne 0 ]
        [[ "$output" == *"PCR 9 has never been extended"* ]]
        # Predict PCR 9 after one extend of SHA-256("x"), bind to it, then make it so.
        d=$(printf x | sha256sum | cut -d' ' -f1)
        want=$( (printf '%064d' 0 | xxd -r -p; printf '%s' "$d" | xxd -r -p) | sha256sum | cut -d' ' -f1)
        run enroll --pcrs 7,9 --pcr-value 9="$want"
        [ "$status" -eq 0 ]
        run unlock_test
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"PCR 9 differs"* ]]
        tpm2_pcrextend "9:sha256=$d"
        run unlock_test
        [ "$status" -eq 0 ]
}

@test "SRK changed (TPM state wiped): refused before anything is unsealed" {
        enroll
        swtpm_stop
        swtpm_start
        pcr_extend 7 "secure boot state"
        run unlock_test
        echo "$output"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"SRK differs from the one at enroll"* ]]
}

@test "persistent SRK at 0x81000001 is used and survives a TPM restart" {
        tpm2_createprimary -C o -g sha256 -G ecc256:aes128cfb -c "$TEST_TMP/srk.ctx" \
                -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' >/dev/null
        tpm2_evictcontrol -C o -c "$TEST_TMP/srk.ctx" 0x81000001 >/dev/null
        # No resource manager on a raw swtpm: free the transient copy that createprimary left.
        tpm2_flushcontext -t
        enroll
        swtpm_restart
        pcr_extend 7 "secure boot state"
        run unlock_test
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "PIN: right PIN unlocks, wrong PIN and no PIN are refused" {
        printf '1234\n' >"$TEST_TMP/pin"
        run enroll --pin-file "$TEST_TMP/pin"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"and a PIN."* ]]
        run unlock_test --pin-file "$TEST_TMP/pin"
        [ "$status" -eq 0 ]
        printf '9999' >"$TEST_TMP/wrong"
        run unlock_test --pin-file "$TEST_TMP/wrong"
        echo "$output"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"wrong PIN"* ]]
        run unlock_test
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"needs a PIN"* ]]
}

@test "wrong existing passphrase: enroll refuses and adds nothing" {
        printf 'nope' >"$TEST_TMP/bad"
        run cvm --tpm "$TPM_TCTI" enroll "$IMG" --unlock-key-file "$TEST_TMP/bad"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"opens no keyslot"* ]]
        run cryptsetup luksDump "$IMG"
        [[ "$output" != *"1: luks2"* ]]
}

@test "recovery key: printed once, opens the volume, written 0600 to a file" {
        run enroll --recovery-key
        echo "$output"
        [ "$status" -eq 0 ]
        key=$(printf '%s\n' "$output" | sed -n 's/^    \([a-z-]*\)$/\1/p')
        [[ "$key" =~ ^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$ ]]
        [ "$(token_field "$IMG" 1 type)" = cvmcrypt-recovery ]
        printf '%s' "$key" >"$TEST_TMP/rk"
        run cvm unlock "$IMG" --test --recovery --recovery-key-file "$TEST_TMP/rk"
        [ "$status" -eq 0 ]
        # Typed with spaces instead of dashes and in upper case: still the same key.
        printf '%s\n' "$key" | tr 'a-z-' 'A-Z ' >"$TEST_TMP/rk2"
        run cvm unlock "$IMG" --test --recovery --recovery-key-file "$TEST_TMP/rk2"
        [ "$status" -eq 0 ]

        IMG=$TEST_TMP/second.img
        make_luks_image "$IMG" "build pass"
        run enroll --recovery-key-file "$TEST_TMP/rk-file"
        [ "$status" -eq 0 ]
        [[ "$output" != *"Recovery key (shown once"* ]]
        [ "$(stat -c %a "$TEST_TMP/rk-file")" = 600 ]
        run cvm unlock "$IMG" --test --recovery --recovery-key-file "$TEST_TMP/rk-file"
        [ "$status" -eq 0 ]
        # Never over an existing file.
        IMG=$TEST_TMP/third.img
        make_luks_image "$IMG" "build pass"
        run enroll --recovery-key-file "$TEST_TMP/rk-file"
        [ "$status" -ne 0 ]
        [[ "$output" == *"cannot write the recovery key"* ]]
}

@test "TPM path fails, --ask falls back to the recovery key" {
        enroll --recovery-key-file "$TEST_TMP/rk"
        pcr_extend 7 "changed"
        run unlock_test --ask --recovery-key-file "$TEST_TMP/rk"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"PCR 7 differs"* ]]
        [[ "$output" == *"key verified"* ]]
}

@test "unlock is non-interactive by default" {
        enroll --recovery-key-file "$TEST_TMP/rk"
        pcr_extend 7 "changed"
        run unlock_test </dev/null
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" != *"Recovery key:"* ]]
}

@test "no token of ours: clear error" {
        run unlock_test
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"no cvmcrypt-tpm2 token"* ]]
}

@test "keyslot gone: clear error" {
        enroll
        # cryptsetup keeps the token and empties its keyslot list.
        cryptsetup luksKillSlot --batch-mode --key-file "$TEST_TMP/pass" "$IMG" 1
        run unlock_test
        echo "$output"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"token 0: its keyslot is gone"* ]]
}
