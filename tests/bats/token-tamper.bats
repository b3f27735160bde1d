#!/usr/bin/env bats
# The LUKS2 header is the host's: every token field it can rewrite must give its own clear error,
# never a crash and never an unlock.

load helpers

setup() {
        common_setup
        swtpm_start
        IMG=$TEST_TMP/disk.img
        make_luks_image "$IMG" "build pass"
        printf '%s' "build pass" >"$TEST_TMP/pass"
        pcr_extend 7
        pcr_extend 4
        cvm --tpm "$TPM_TCTI" enroll "$IMG" --unlock-key-file "$TEST_TMP/pass" --pcrs 4,7 >/dev/null
}
teardown() { common_teardown; }

# tampered PYTHON-STATEMENT EXPECTED-MESSAGE [EXIT]
tampered() {
        token_edit "$IMG" 0 "$1"
        run cvm --tpm "$TPM_TCTI" unlock "$IMG" --test
        echo "after: $1"
        echo "$output"
        [ "$status" -eq "${3:-$EXIT_DEVICE}" ]
        [[ "$output" == *"$2"* ]]
        [[ "$output" != *"key verified"* ]]
}

@test "untampered token unlocks (control)" {
        run cvm --tpm "$TPM_TCTI" unlock "$IMG" --test
        [ "$status" -eq 0 ]
}

@test "token version" { tampered "t['version']=2" "token version 2 is not supported"; }
@test "token type" { tampered "t['type']='cvmcrypt-tpm3'" "no cvmcrypt-tpm2 token"; }
@test "token unknown field" { tampered "t['extra']=1" "extra"; }
@test "token missing field" { tampered "del t['tpm2-srk-name']" "tpm2-srk-name"; }
@test "tpm2-blob not base64" { tampered "t['tpm2-blob']='!!!!'" "tpm2-blob"; }
@test "tpm2-blob valid base64 of garbage" {
        tampered "import base64; t['tpm2-blob']=base64.b64encode(b'\\x00\\x10'+b'A'*40).decode()" "'tpm2-blob' is not a TPM2B_PUBLIC followed by a TPM2B_PRIVATE"
}
@test "tpm2-blob truncated" {
        tampered "import base64; b=base64.b64decode(t['tpm2-blob']); t['tpm2-blob']=base64.b64encode(b[:-10]).decode()" "'tpm2-blob' is not a TPM2B_PUBLIC followed by a TPM2B_PRIVATE"
}
@test "tpm2-pcrs changed" { tampered "t['tpm2-pcrs']=[7]" "tpm2-pcr-values"; }
@test "tpm2-pcrs and values changed consistently" {
        tampered "t['tpm2-pcrs']=[7]; del t['tpm2-pcr-values']['4']" "do not match its policy hash"
}
@test "tpm2-pcr-bank" { tampered "t['tpm2-pcr-bank']='sha1'" "tpm2-pcr-bank"; }
@test "tpm2-pcr-values edited" {
        tampered "t['tpm2-pcr-values']['7']='00'*32" "do not match its policy hash"
}
@test "tpm2-policy-hash edited" { tampered "t['tpm2-policy-hash']='11'*32" "do not match its policy hash"; }
@test "tpm2-policy-hash and values edited to a consistent forgery" {
        # A forger who recomputes the policy hash still cannot change the sealed object's authPolicy.
        tampered "
import hashlib,struct
v=t['tpm2-pcr-values']; v['7']='00'*32
sel=struct.pack('>IHB3s',1,0x0B,3,bytes([0x90,0x00,0x00]))
d=hashlib.sha256(bytes.fromhex(v['4'])+bytes.fromhex(v['7'])).digest()
t['tpm2-policy-hash']=hashlib.sha256(b'\\0'*32+struct.pack('>I',0x17F)+sel+d).hexdigest()" "policy differs from the token's policy hash"
}
@test "tpm2-srk-name edited" { tampered "t['tpm2-srk-name']='000b'+'22'*32" "SRK differs" "$EXIT_DENIED"; }
@test "tpm2-pin flipped" {
        # A PIN changes the policy digest, so the flip is caught before the TPM is asked.
        tampered "t['tpm2-pin']=True" "do not match its policy hash"
}
@test "tpm2-blob with a flipped bit in the private part" {
        tampered "import base64; b=bytearray(base64.b64decode(t['tpm2-blob'])); b[-5]^=1; t['tpm2-blob']=base64.b64encode(bytes(b)).decode()" "the sealed blob is malformed"
}
@test "tpm2-pin wrong type" { tampered "t['tpm2-pin']='yes'" "tpm2-pin"; }
@test "attest not hex" { tampered "t['attest']='zz'" "attest"; }
@test "keyslots re-pointed at another slot: harmless, the key comes from the TPM, not the slot" {
        token_edit "$IMG" 0 "t['keyslots']=['0']"
        run cvm --tpm "$TPM_TCTI" unlock "$IMG" --test
        [ "$status" -eq 0 ]
}
