#!/usr/bin/env bats
# The host owns the disk: a forged header or a swapped volume must never get the TPM-sealed key
# used, even when everything the header says looks consistent.

load helpers

MUTATE=$BATS_TEST_DIRNAME/../fixtures/luks2-mutate.py

setup() {
        common_setup
        swtpm_start
        IMG=$TEST_TMP/disk.img
        make_luks_image "$IMG" "build pass"
        printf '%s' "build pass" >"$TEST_TMP/pass"
        pcr_extend 7
        cvm --tpm "$TPM_TCTI" enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" >/dev/null
}
teardown() { common_teardown; }

unlock_test() {
        run cvm --tpm "$TPM_TCTI" unlock "$1" --test
        echo "$output"
}

@test "keyslot area rewritten to cipher_null (the 2025 attack): header rejected" {
        python3 "$MUTATE" "$IMG" set keyslots.1.area.encryption '"cipher_null-ecb"'
        unlock_test "$IMG"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"LUKS2 header rejected"*"cipher_null"* ]]
}

@test "data segment rewritten to cipher_null: header rejected" {
        python3 "$MUTATE" "$IMG" set segments.0.encryption '"cipher_null-ecb"'
        unlock_test "$IMG"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"LUKS2 header rejected"*"cipher_null"* ]]
}

@test "an unknown mandatory requirement: header rejected" {
        python3 "$MUTATE" "$IMG" set config.requirements '{"mandatory":["future-feature"]}'
        unlock_test "$IMG"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"LUKS2 header rejected"*"future-feature"* ]]
}

@test "enroll refuses a forged header too" {
        python3 "$MUTATE" "$IMG" set segments.0.encryption '"cipher_null-ecb"'
        run cvm --tpm "$TPM_TCTI" enroll "$IMG" --unlock-key-file "$TEST_TMP/pass"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"LUKS2 header rejected"* ]]
}

# Unseals our own token with tpm2-tools, as an attacker who learned the secret would have it.
steal_secret() {
        local b64 dir=$TEST_TMP/steal
        mkdir -p "$dir"
        b64=$(token_field "$IMG" 0 tpm2-blob)
        printf '%s' "$b64" | base64 -d >"$dir/blob"
        python3 -c "
import struct,sys
b=open('$dir/blob','rb').read(); n=struct.unpack('>H',b[:2])[0]
open('$dir/pub','wb').write(b[:2+n]); open('$dir/priv','wb').write(b[2+n:])"
        tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb -c "$dir/srk.ctx" \
                -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt'
        # No resource manager: flush what each tool leaves loaded; the .ctx files reload it.
        tpm2_flushcontext -t
        tpm2_load -Q -C "$dir/srk.ctx" -u "$dir/pub" -r "$dir/priv" -c "$dir/obj.ctx"
        tpm2_flushcontext -t
        tpm2_startauthsession -Q --policy-session -S "$dir/s.ctx"
        tpm2_policypcr -Q -S "$dir/s.ctx" -l sha256:7
        tpm2_unseal -c "$dir/obj.ctx" -p "session:$dir/s.ctx" >"$dir/payload"
        tpm2_flushcontext -t -l -s 2>/dev/null || true
        head -c 32 "$dir/payload" >"$TEST_TMP/secret"
}

@test "a swapped volume whose keyslot accepts the unsealed secret is refused" {
        steal_secret
        [ "$(stat -c %s "$TEST_TMP/secret")" -eq 32 ]
        # The secret really is the keyslot passphrase of the genuine volume...
        cryptsetup open --test-passphrase --key-file "$TEST_TMP/secret" "$IMG"
        # ...and the host builds another volume (its own volume key) that accepts it, with our token.
        FAKE=$TEST_TMP/fake.img
        truncate -s 32M "$FAKE"
        cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
                --key-file "$TEST_TMP/secret" "$FAKE"
        cryptsetup token export --token-id 0 "$IMG" |
                python3 -c "import json,sys; t=json.load(sys.stdin); t['keyslots']=['0']; print(json.dumps(t))" |
                cryptsetup token import --token-id 0 "$FAKE"
        unlock_test "$FAKE"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"the volume key sealed at enroll does not open this volume (volume swapped or header forged)"* ]]
        # Control: the genuine volume still unlocks.
        unlock_test "$IMG"
        [ "$status" -eq 0 ]
}
