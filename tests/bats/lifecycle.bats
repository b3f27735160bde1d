#!/usr/bin/env bats
# status, reseal, recover, remove on a private swtpm and LUKS2 image files. status output is
# compared with golden files (tests/bats/golden; UPDATE_GOLDEN=1 rewrites them); the SRK name is
# the only part that differs between TPMs and is replaced by <srk> before comparing.

load helpers

GOLDEN=$BATS_TEST_DIRNAME/golden

setup() {
        common_setup
        swtpm_start
        cd "$TEST_TMP"
        IMG=disk.img
        truncate -s 32M "$IMG"
        printf '%s' "build pass" | cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 \
                --pbkdf-force-iterations 1000 --uuid 3f0c4a43-5f4e-4d5e-9a53-2f6b8c1d0e7a --key-file - "$IMG"
        printf '%s' "build pass" >pass
        pcr_extend 7 "secure boot state"
}
teardown() { common_teardown; }

enroll() {
        cvm --tpm "$TPM_TCTI" enroll "$IMG" --unlock-key-file pass "$@"
}

unlock_test() {
        cvm --tpm "$TPM_TCTI" unlock "$IMG" --test "$@"
}

# golden NAME COMMAND...: runs COMMAND (must exit 0) and compares its output with golden/NAME.
golden() {
        local name=$1 out
        shift
        run "$@"
        echo "$output"
        [ "$status" -eq 0 ]
        out=$(printf '%s\n' "$output" | sed -E 's/000b[0-9a-f]{64}/<srk>/g')
        if [ -n "${UPDATE_GOLDEN:-}" ]; then
                printf '%s\n' "$out" >"$GOLDEN/$name"
        fi
        diff -u "$GOLDEN/$name" <(printf '%s\n' "$out")
}

status_both() {
        golden "status-$1.txt" cvm --tpm "$TPM_TCTI" status "$IMG"
        golden "status-$1.json" cvm --tpm "$TPM_TCTI" status "$IMG" --json
}

tpm_tokens() {
        cvm --tpm "$TPM_TCTI" status "$IMG" --json |
                python3 -c 'import json,sys; print(" ".join(str(t["token"]) for t in json.load(sys.stdin)["tokens"] if t["type"]=="cvmcrypt-tpm2"))'
}

@test "status after a fresh enroll (text and JSON)" {
        enroll --recovery-key-file rk
        status_both fresh
}

@test "status after a PCR change names the PCR with sealed and current values" {
        enroll --recovery-key-file rk
        pcr_extend 7 "new bootloader"
        status_both pcr-changed
        run cvm --tpm "$TPM_TCTI" status "$IMG"
        [[ "$output" == *"would unlock now: no, PCR 7 differs from the sealed policy"* ]]
}

@test "status after the TPM was cleared says the SRK changed" {
        enroll --recovery-key-file rk
        swtpm_stop
        swtpm_start
        pcr_extend 7 "secure boot state"
        status_both srk-changed
}

@test "status of a damaged token says so and does not crash" {
        enroll --recovery-key-file rk
        token_edit "$IMG" 0 't["tpm2-policy-hash"]="zz"'
        status_both token-damaged
}

@test "status of a token whose keyslot is gone, and of a keyslot without a token" {
        enroll --recovery-key-file rk
        cryptsetup luksKillSlot --batch-mode "$IMG" 1 </dev/null
        run cvm --tpm "$TPM_TCTI" status "$IMG"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"token 0: cvmcrypt-tpm2, keyslot none"*"  damaged: its keyslot is gone"*"  would unlock now: no"* ]]
        [[ "$output" == *"keyslot 0: no token (a passphrase or key file)"* ]]
}

@test "a token without a TPM reads 'unknown'; status of a non-LUKS file fails cleanly" {
        enroll
        run cvm --tpm "swtpm:path=$TEST_TMP/nowhere" status "$IMG" --json
        [ "$status" -eq 0 ]
        [[ "$output" == *'"would-unlock": "unknown"'* ]]
        [[ "$output" == *'"reason": "the TPM is not available"'* ]]
        truncate -s 1M plain.img
        run cvm --tpm "$TPM_TCTI" status plain.img
        echo "$output"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"LUKS2 header rejected: no LUKS header"* ]]
}

@test "reseal after a PCR change with the recovery key, then unlock" {
        enroll --recovery-key-file rk
        pcr_extend 7 "new bootloader"
        run unlock_test
        [ "$status" -eq "$EXIT_DENIED" ]
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --recovery-key-file rk
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == "$IMG: TPM2 keyslot 3 (token 2), bound to sha256 PCR 7, unseals the volume key."* ]]
        [[ "$output" == *"Removed the old token 0 and its keyslot."* ]]
        run unlock_test
        [ "$status" -eq 0 ]
        [ "$(tpm_tokens)" = 2 ]
        # The old keyslot went with its token; the passphrase and recovery key still open.
        run cryptsetup luksDump "$IMG"
        [[ "$output" != *"  1: luks2"* ]]
        passphrase_opens "$IMG" "build pass"
        run cvm unlock --recovery --test --recovery-key-file rk "$IMG"
        [ "$status" -eq 0 ]
}

@test "reseal with a passphrase file, and with a working slot and new PCRs (no secret needed)" {
        enroll
        pcr_extend 7 "new bootloader"
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --unlock-key-file pass --json
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == '{"keyslot":2,"token":1,"pcr-bank":"sha256","pcrs":[7],"pin":false,"proven":true,"removed-tokens":[0],"kept-tokens":[]}' ]]
        pcr_extend 8 "kernel command line"
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --pcrs 7,8 </dev/null
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"bound to sha256 PCRs 7,8, unseals the volume key."* ]]
        run unlock_test
        [ "$status" -eq 0 ]
        pcr_extend 8 "other command line"
        run unlock_test
        [[ "$output" == *"PCR 8 differs"* ]]
}

@test "reseal to a predicted value keeps the old slot until the value is real" {
        enroll --recovery-key-file rk
        local now next
        now=$(tpm2_pcrread sha256:7 | awk '/7 :/ {print $3}' | sed 's/^0x//')
        next=$(python3 -c "import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1]) + hashlib.sha256(b'update').digest()).hexdigest())" "$now")
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --pcrs 7 --pcr-value "7=$next"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"bound to predicted values, not tried."* ]]
        [[ "$output" == *"Kept the old token 0: once the predicted values are real, remove it with \`cvmcrypt remove $IMG --token 0\`."* ]]
        run unlock_test
        [ "$status" -eq 0 ]
        pcr_extend 7 update
        run unlock_test
        echo "$output"
        [ "$status" -eq 0 ]
        run cvm remove "$IMG" --token 0
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == "$IMG: removed token 0 and keyslot 1." ]]
        run unlock_test
        [ "$status" -eq 0 ]
}

@test "reseal refuses to guess among several TPM tokens, and a wrong secret" {
        enroll
        enroll
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" </dev/null
        echo "$output"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$output" == *"several cvmcrypt-tpm2 tokens (0, 1): choose one with --token"* ]]
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --token 1 </dev/null
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(tpm_tokens)" = "0 2" ]
        printf 'wrong' >wrong
        pcr_extend 7 "new bootloader"
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --token 0 --unlock-key-file wrong
        echo "$output"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"the passphrase or recovery key opens no keyslot"* ]]
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --token 5 --unlock-key-file pass
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"token 5 is not a cvmcrypt-tpm2 token"* ]]
}

@test "reseal keeps a PIN and refuses to drop it" {
        printf '1234' >pin
        enroll --pin-file pin
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --unlock-key-file pass
        echo "$output"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"token 0 is protected by a PIN: give it (--pin-file) so the new slot keeps one"* ]]
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --pin-file pin </dev/null
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"bound to sha256 PCR 7 and a PIN, unseals the volume key."* ]]
        run unlock_test --pin-file pin
        [ "$status" -eq 0 ]
        run unlock_test
        [[ "$output" == *"needs a PIN"* ]]
}

@test "recover after the TPM was wiped, then the TPM slot works again" {
        enroll --recovery-key-file rk
        swtpm_stop
        swtpm_start
        pcr_extend 7 "secure boot state"
        run unlock_test
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"SRK differs"* ]]
        run cvm unlock --recovery --test --recovery-key-file rk "$IMG"
        [ "$status" -eq 0 ]
        run cvm --tpm "$TPM_TCTI" recover "$IMG" --recovery-key-file rk
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"unseals the volume key."*"Removed the old token 0 and its keyslot."* ]]
        run unlock_test
        [ "$status" -eq 0 ]
        run cvm --tpm "$TPM_TCTI" status "$IMG"
        [[ "$output" == *"would unlock now: yes"* ]]
}

@test "recover takes only the recovery key, and re-enrolls a volume that has no TPM token" {
        enroll --recovery-key-file rk
        run cvm --tpm "$TPM_TCTI" recover "$IMG" --recovery-key-file pass
        echo "$output"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"that is not a recovery key"* ]]
        run cvm remove "$IMG" --token 0
        [ "$status" -eq 0 ]
        run cvm --tpm "$TPM_TCTI" recover "$IMG" --recovery-key-file rk --pcrs 7
        echo "$output"
        [ "$status" -eq 0 ]
        run unlock_test
        [ "$status" -eq 0 ]
}

@test "remove refuses the last way in and leaving only TPM-bound slots" {
        enroll --recovery-key-file rk
        cryptsetup luksKillSlot --batch-mode "$IMG" 0 </dev/null
        run cvm remove "$IMG" --token 1
        echo "$output"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$output" == *"without token 1 only TPM-bound keyslots are left (1)"* ]]
        run cvm remove "$IMG" --token 0
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == "$IMG: removed token 0 and keyslot 1." ]]
        run cvm remove "$IMG" --token 1
        echo "$output"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$output" == *"token 1 holds the last keyslot; without it nothing opens the volume"* ]]
        run cvm unlock --recovery --test --recovery-key-file rk "$IMG"
        [ "$status" -eq 0 ]
        run cvm remove "$IMG" --token 7
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"there is no token 7"* ]]
}

@test "remove, reseal and recover usage errors" {
        run cvm remove "$IMG"
        [ "$status" -eq "$EXIT_USAGE" ]
        [[ "$output" == *"remove: which token? (--token N"* ]]
        run cvm remove "$IMG" --token 32
        [ "$status" -eq "$EXIT_USAGE" ]
        run cvm remove "$IMG" --token 1x
        [ "$status" -eq "$EXIT_USAGE" ]
        run cvm reseal "$IMG" --unlock-key-file pass --recovery-key-file pass
        [ "$status" -eq "$EXIT_USAGE" ]
        run cvm recover "$IMG" --unlock-key-file pass
        [ "$status" -eq "$EXIT_USAGE" ]
        run cvm reseal "$IMG" --pcr-value 8=00
        [ "$status" -eq "$EXIT_USAGE" ]
        run cvm status
        [ "$status" -eq "$EXIT_USAGE" ]
}

@test "reseal of a token that demands attestation needs --attest, so the gate is not lost" {
        enroll --recovery-key-file rk
        token_edit "$IMG" 0 't["attest"]="ab"*32'
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --recovery-key-file rk
        echo "$output"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$output" == *"token 0 demands attestation: reseal with --attest so that the new slot keeps the gate"* ]]
        run cvm --tpm "$TPM_TCTI" reseal "$IMG" --recovery-key-file rk --attest
        echo "$output"
        [ "$status" -eq "$EXIT_FAILURE_GENERIC" ]
        [[ "$output" == *"the configuration does not attest (set attest= and policy=)"* ]]
        [ "$(tpm_tokens)" = 0 ]
}
