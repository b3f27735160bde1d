#!/usr/bin/env bats
# image-prepare, provision and recover --escrow on image files and a private swtpm. The host has no
# device-mapper, so volumes are read through tests/fixtures/luks2-plain (the plaintext of the data
# segment, from a passphrase or recovery key) and checked with e2fsck -n and checksums.
# The crash tests kill provision with SIGKILL at its K-th write system call (strace fault
# injection), for every K of a complete run (CRASH_STRIDE=N: every Nth), run it again, and demand
# the same plaintext, byte for byte, as before provisioning.

load helpers

PLAIN=$BATS_TEST_DIRNAME/../../build/tests/fixtures/luks2-plain

setup() {
        common_setup
        PLAIN=$(dirname "$CVMCRYPT")/tests/fixtures/luks2-plain
        [ -x "$PLAIN" ] || skip "tests/fixtures/luks2-plain is not built (make check builds it)"
        swtpm_start
        pcr_extend 7 "secure boot state"
        pcr_extend 15 "cvmcrypt gate"
        TREE=$TEST_TMP/tree
        mkdir -p "$TREE/etc" "$TREE/usr/share"
        cp -r /usr/share/doc/bash "$TREE/usr/share/"
        head -c 3000000 /dev/urandom >"$TREE/etc/random.bin"
        echo "cvmcrypt provisioning test" >"$TREE/etc/motd"
        BASE=$TEST_TMP/base.img
        truncate -s 32M "$BASE"
        mkfs.ext4 -q -F -b 4096 -L root -d "$TREE" "$BASE"
        openssl req -x509 -newkey rsa:3072 -nodes -keyout "$TEST_TMP/admin.key" -out "$TEST_TMP/admin.pem" \
                -subj /CN=cvmcrypt-escrow-test -days 30 2>/dev/null
        cat >"$TEST_TMP/provision.conf" <<EOF
provision-escrow-cert=$TEST_TMP/admin.pem
provision-escrow-out=$TEST_TMP/escrow.pem
event-log=$TEST_TMP/tpm-measure.log
EOF
        CVM_CONFIG=$TEST_TMP/provision.conf
        IMG=$TEST_TMP/root.img
}
teardown() { common_teardown; }

# next_boot: the same TPM, its PCRs back to zero and extended as in every boot of this VM.
next_boot() {
        swtpm_restart
        pcr_extend 7 "secure boot state"
        pcr_extend 15 "cvmcrypt gate"
}

prepare_image() {
        cp --sparse=always "$BASE" "$IMG"
        cvm image-prepare "$IMG" --key-file "$TEST_TMP/build.key" "$@"
}

provision() {
        cvm --tpm "$TPM_TCTI" provision "$IMG" "$@"
}

# The recovery key from the escrow, with the admin's key, as an admin would read it.
escrowed_key() {
        openssl cms -decrypt -inform PEM -in "$TEST_TMP/escrow.pem" -inkey "$TEST_TMP/admin.key" | tr -d '-'
}

# tree_sums DIR: checksums of every file under DIR, by relative path.
tree_sums() {
        (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# plain_tree PLAIN-IMAGE DIR: the file system's files, read with debugfs (no mount on the host).
plain_tree() {
        mkdir -p "$2"
        debugfs -R "rdump / $2" "$1" >/dev/null 2>&1
        rm -rf "$2/lost+found"
}

@test "image-prepare encrypts a plain file system in place; the build key reads the same files" {
        run prepare_image
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"encrypted the ext4 file system in place (the image grew by 32 MiB)"* ]]
        [[ "$output" == *"seals it to sha256 PCRs 7,15 (gate PCR 15)"* ]]
        [ "$(stat -c %a "$TEST_TMP/build.key")" = 600 ]
        [ "$(stat -c %s "$TEST_TMP/build.key")" = 32 ]
        [ "$(stat -c %s "$IMG")" = $((64 << 20)) ]
        [ "$(token_field "$IMG" 0 type)" = cvmcrypt-provision ]
        [ "$(token_field "$IMG" 0 key)" = "$(base64 -w0 <"$TEST_TMP/build.key")" ]
        cryptsetup luksDump "$IMG" | grep -q 'sector: 4096 \[bytes\]'
        "$PLAIN" "$IMG" "$TEST_TMP/build.key" "$TEST_TMP/plain.img"
        e2fsck -fn "$TEST_TMP/plain.img"
        plain_tree "$TEST_TMP/plain.img" "$TEST_TMP/out"
        diff <(tree_sums "$TREE") <(tree_sums "$TEST_TMP/out")
        # The header is one the boot accepts.
        run cvm status "$IMG"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"token 0: cvmcrypt-provision, keyslot 0"* ]]
}

@test "image-prepare refuses: an existing key file, a second run, a LUKS2 image without its passphrase, no file system" {
        prepare_image
        run cvm image-prepare "$IMG" --key-file "$TEST_TMP/build.key"
        [ "$status" -ne 0 ]
        [[ "$output" == *"already carries a cvmcrypt-provision token"* ]]
        cp --sparse=always "$BASE" "$TEST_TMP/other.img"
        run cvm image-prepare "$TEST_TMP/other.img" --key-file "$TEST_TMP/build.key"
        [ "$status" -ne 0 ]
        [[ "$output" == *"cannot create the key file $TEST_TMP/build.key: it exists (it is never overwritten)"* ]]
        cmp "$BASE" "$TEST_TMP/other.img"
        run cvm image-prepare "$TEST_TMP/other.img"
        [ "$status" -eq "$EXIT_USAGE" ]
        [[ "$output" == *"--key-file FILE"* ]]
        make_luks_image "$TEST_TMP/luks.img" "known pass"
        run cvm image-prepare "$TEST_TMP/luks.img" --key-file "$TEST_TMP/k2"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"LUKS2 already: give its passphrase (--unlock-key-file)"* ]]
        truncate -s 8M "$TEST_TMP/blank.img"
        run cvm image-prepare "$TEST_TMP/blank.img" --key-file "$TEST_TMP/k3"
        [ "$status" -ne 0 ]
        [[ "$output" == *"no file system found"* ]]
        run cvm image-prepare "$IMG" --key-file "$TEST_TMP/k4" --pcrs 7,15
        [ "$status" -ne 0 ]
        [[ "$output" == *"PCR 15 is the gate PCR"* ]]
}

@test "image-prepare on a LUKS2 image with a known passphrase adds the provisioning slot" {
        make_luks_image "$IMG" "known pass"
        printf '%s' "known pass" >"$TEST_TMP/pass"
        run cvm image-prepare "$IMG" --key-file "$TEST_TMP/build.key" --unlock-key-file "$TEST_TMP/pass" --pcrs 0,7 --json
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *'"encrypted":false,"resumed":false,"grown":0'*'"keyslot":1,"token":0,"pcr-bank":"sha256","pcrs":[0,7],"gate-pcr":15}' ]]
        cryptsetup open --test-passphrase --key-file "$TEST_TMP/build.key" "$IMG"
        # provision replaces both slots: the build-time key and the image's own passphrase.
        pcr_extend 0 firmware
        run provision
        echo "$output"
        [ "$status" -eq 0 ]
        ! passphrase_opens "$IMG" "known pass"
        ! cryptsetup open --test-passphrase --key-file "$TEST_TMP/build.key" "$IMG"
}

@test "provision re-keys, seals, escrows, drops the build-time slot and measures; the data stays the same" {
        prepare_image
        "$PLAIN" "$IMG" "$TEST_TMP/build.key" "$TEST_TMP/before.img"
        run provision
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"provisioned (LUKS2 "*"re-keyed to a fresh volume key, sealed to this TPM, build-time keyslot removed."* ]]
        [[ "$output" == *"Recovery key escrowed to $TEST_TMP/escrow.pem (sha256:"* ]]
        [[ "$output" == *"The new TPM slot opens the volume (not activated)."* ]]
        # The escrow: PEM CMS EnvelopedData, RSA-OAEP, no plaintext; the log shows its fingerprint only.
        fp=$(openssl cms -in "$TEST_TMP/escrow.pem" -inform PEM -outform DER -cmsout | sha256sum | cut -d' ' -f1)
        [[ "$output" == *"sha256:$fp"* ]]
        openssl cms -cmsout -print -inform PEM -in "$TEST_TMP/escrow.pem" | grep -q 'rsaesOaep'
        escrowed_key >"$TEST_TMP/rk"
        [ "$(wc -c <"$TEST_TMP/rk")" -eq 64 ]
        ! grep -q "$(head -c 16 "$TEST_TMP/rk")" "$TEST_TMP/escrow.pem"
        [[ "$output" != *"$(head -c 16 "$TEST_TMP/rk")"* ]]
        # The same plaintext under a new key; the build-time key opens nothing.
        "$PLAIN" "$IMG" "$TEST_TMP/rk" "$TEST_TMP/after.img"
        cmp "$TEST_TMP/before.img" "$TEST_TMP/after.img"
        e2fsck -fn "$TEST_TMP/after.img"
        ! cryptsetup open --test-passphrase --key-file "$TEST_TMP/build.key" "$IMG"
        # Exactly a TPM token and a recovery token are left, each with its keyslot.
        run cryptsetup luksDump --dump-json-metadata "$IMG"
        types=$(printf '%s' "$output" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sorted(t["type"] for t in d["tokens"].values()), len(d["keyslots"]), len(d["digests"]), len(d["segments"]), "requirements" in d["config"])')
        [ "$types" = "['cvmcrypt-recovery', 'cvmcrypt-tpm2'] 2 1 1 False" ]
        cvm unlock --test --recovery --recovery-key-file "$TEST_TMP/rk" "$IMG"
        # The event: cvmcrypt:provisioned:UUID in the gate PCR's log, extended after the seal, so the
        # TPM slot opens the volume in the next boot (same PCR values), not in this one.
        uuid=$(cryptsetup luksUUID "$IMG")
        grep -q "\"string\":\"cvmcrypt:provisioned:$uuid\"" "$TEST_TMP/tpm-measure.log"
        run cvm --tpm "$TPM_TCTI" unlock --test "$IMG"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"PCR 15 differs from the sealed policy"* ]]
        next_boot
        cvm --tpm "$TPM_TCTI" unlock --test "$IMG"
        # Nothing left to do.
        run provision
        [ "$status" -eq 0 ]
        [[ "$output" == *"no provisioning token: nothing to do."* ]]
}

@test "two VMs from one image end with different volume keys" {
        prepare_image
        cp --sparse=always "$IMG" "$TEST_TMP/second.img"
        provision
        escrowed_key >"$TEST_TMP/rk1"
        vk1=$(cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$TEST_TMP/rk1" "$IMG" | tr -d ' \n' | sed 's/.*MKdump://')
        IMG=$TEST_TMP/second.img
        provision
        escrowed_key >"$TEST_TMP/rk2"
        vk2=$(cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$TEST_TMP/rk2" "$IMG" | tr -d ' \n' | sed 's/.*MKdump://')
        [ -n "$vk1" ] && [ -n "$vk2" ]
        [ "$vk1" != "$vk2" ]
        ! cmp -s "$TEST_TMP/rk1" "$TEST_TMP/rk2"
}

@test "recover --escrow: the admin's key opens the escrow, unlocks and re-enrolls after a PCR change" {
        prepare_image
        provision
        pcr_extend 7 "new shim"
        run cvm --tpm "$TPM_TCTI" unlock --test "$IMG"
        [ "$status" -eq "$EXIT_DENIED" ]
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TEST_TMP/other.key" -out "$TEST_TMP/other.pem" -subj /CN=x 2>/dev/null
        run cvm --tpm "$TPM_TCTI" recover --escrow "$TEST_TMP/escrow.pem" --key "$TEST_TMP/other.key" "$IMG"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"the escrow does not decrypt with this private key"* ]]
        run cvm --tpm "$TPM_TCTI" recover --escrow "$TEST_TMP/escrow.pem" "$IMG"
        [ "$status" -eq "$EXIT_USAGE" ]
        run cvm --tpm "$TPM_TCTI" recover --escrow "$TEST_TMP/escrow.pem" --key "$TEST_TMP/admin.key" "$IMG"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"bound to sha256 PCRs 7,15, unseals the volume key."* ]]
        cvm --tpm "$TPM_TCTI" unlock --test "$IMG"
}

@test "an EC admin certificate gets ECDH with a SHA-256 KDF" {
        openssl ecparam -name prime256v1 -genkey -noout -out "$TEST_TMP/ec.key"
        openssl req -x509 -new -key "$TEST_TMP/ec.key" -out "$TEST_TMP/ec.pem" -subj /CN=ec-escrow -days 30 2>/dev/null
        sed -i "s|^provision-escrow-cert=.*|provision-escrow-cert=$TEST_TMP/ec.pem|" "$CVM_CONFIG"
        prepare_image
        provision
        openssl cms -cmsout -print -inform PEM -in "$TEST_TMP/escrow.pem" | grep -q 'dhSinglePass-stdDH-sha256kdf-scheme'
        openssl cms -decrypt -inform PEM -in "$TEST_TMP/escrow.pem" -inkey "$TEST_TMP/ec.key" | tr -d '-' >"$TEST_TMP/rk"
        cvm unlock --test --recovery --recovery-key-file "$TEST_TMP/rk" "$IMG"
        run cvm --tpm "$TPM_TCTI" recover --escrow "$TEST_TMP/escrow.pem" --key "$TEST_TMP/ec.key" "$IMG"
        [ "$status" -eq 0 ]
}

@test "provision without an escrow configured warns that the volume has no recovery key" {
        prepare_image
        CVM_CONFIG=$TEST_TMP/empty.conf
        echo "event-log=$TEST_TMP/tpm-measure.log" >"$CVM_CONFIG"
        run provision
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"no escrow configured (provision-escrow-cert=): the volume has no recovery key"* ]]
        [ "$(cryptsetup luksDump "$IMG" | grep -c 'cvmcrypt-')" -eq 1 ]
        echo "provision-escrow-cert=$TEST_TMP/admin.pem" >"$CVM_CONFIG"
        run cvm status "$IMG"
        [ "$status" -eq "$EXIT_CONFIG" ]
        [[ "$output" == *"provision-escrow-cert= and provision-escrow-out= go together"* ]]
}

@test "provision refuses a forged pending reencryption without its token, and unlock refuses a pending re-key" {
        prepare_image
        # A re-key started by hand (the host could write such a header): no provisioning token.
        cp --sparse=always "$IMG" "$TEST_TMP/forged.img"
        cryptsetup token remove --token-id 0 "$TEST_TMP/forged.img"
        cryptsetup reencrypt --init-only --batch-mode --force-offline-reencrypt --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
                --key-file "$TEST_TMP/build.key" "$TEST_TMP/forged.img" >/dev/null
        run cvm --tpm "$TPM_TCTI" provision "$TEST_TMP/forged.img"
        echo "$output"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"LUKS2 header rejected: a second volume key or a pending reencryption, without a cvmcrypt-provision token"* ]]
        # Our own re-key, interrupted: the unlock path never takes it, provision does.
        kill_at 120 "$CVMCRYPT" --config "$CVM_CONFIG" "${CMDLINE_OPT[@]}" --tpm "$TPM_TCTI" provision "$IMG"
        cryptsetup luksDump "$IMG" | grep -q online-reencrypt
        run cvm --tpm "$TPM_TCTI" unlock --test "$IMG"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"requirement 'online-reencrypt-v2' is not supported"* ]]
        provision
}

# user_key add|drop DESCRIPTION [FILE]: a "user" key in this user's keyring (@u), as a boot hands the
# re-key over (no keyutils needed).
user_key() {
        python3 - "$@" <<'PY'
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_add_key, SYS_keyctl, KEY_SPEC_USER_KEYRING, KEYCTL_SEARCH, KEYCTL_INVALIDATE = 248, 250, -4, 10, 21
op, desc = sys.argv[1], sys.argv[2].encode()
if op == "add":
    data = open(sys.argv[3], "rb").read()
    ok = libc.syscall(SYS_add_key, b"user", desc, data, len(data), KEY_SPEC_USER_KEYRING) > 0
else:
    kid = libc.syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, b"user", desc, 0)
    ok = kid < 0 or libc.syscall(SYS_keyctl, KEYCTL_INVALIDATE, kid) == 0
sys.exit(0 if ok else 1)
PY
}

@test "background: provision seals and leaves the re-key initialized; unlock refuses it; foreground finishes it offline" {
        echo "provision-reencrypt=background" >>"$CVM_CONFIG"
        prepare_image
        "$PLAIN" "$IMG" "$TEST_TMP/build.key" "$TEST_TMP/before.img"
        run provision
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"provisioned (LUKS2 "*"sealed to this TPM; the re-key to a fresh volume key is pending."* ]]
        [[ "$output" == *"The new TPM slot opens the volume (not activated); the re-key runs when it is opened with a NAME."* ]]
        [[ "$output" == *"Recovery key escrowed to $TEST_TMP/escrow.pem"* ]]
        # What CRYPT_REENCRYPT_INITIALIZE_ONLY leaves: the requirement, a reencrypt keyslot, nothing
        # re-keyed yet (the old key's segment covers the data), and all our tokens.
        run cryptsetup luksDump --dump-json-metadata "$IMG"
        state=$(printf '%s' "$output" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["config"]["requirements"]["mandatory"], sorted(t["type"] for t in d["tokens"].values()),
      sorted(k["type"] + ("/" + k["mode"] if "mode" in k else "") for k in d["keyslots"].values()),
      len(d["digests"]), sorted(s["type"] + "/" + s.get("flags", ["-"])[0] for s in d["segments"].values()))')
        echo "$state"
        [ "$state" = "['online-reencrypt-v2'] ['cvmcrypt-provision', 'cvmcrypt-recovery', 'cvmcrypt-tpm2'] ['luks2', 'luks2', 'luks2', 'luks2', 'luks2', 'reencrypt/reencrypt'] 3 ['crypt/-', 'crypt/backup-final', 'crypt/backup-previous']" ]
        grep -q "\"string\":\"cvmcrypt:provisioned:$(cryptsetup luksUUID "$IMG")\"" "$TEST_TMP/tpm-measure.log"
        # The unlock path never takes a pending re-key.
        next_boot
        run cvm --tpm "$TPM_TCTI" unlock --test "$IMG"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"requirement 'online-reencrypt-v2' is not supported"* ]]
        # A second boot in the background checks the TPM slot again and leaves the re-key pending.
        run provision
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"the re-key to a fresh volume key is pending (resumed an interrupted run)."* ]]
        cryptsetup luksDump "$IMG" | grep -q online-reencrypt
        # In the foreground, the next run finishes it offline: same data, the build key opens nothing.
        sed -i '/^provision-reencrypt=/d' "$CVM_CONFIG"
        next_boot
        run provision
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"re-keyed to a fresh volume key, sealed to this TPM, build-time keyslot removed (resumed an interrupted run)."* ]]
        escrowed_key >"$TEST_TMP/rk"
        "$PLAIN" "$IMG" "$TEST_TMP/rk" "$TEST_TMP/after.img"
        cmp "$TEST_TMP/before.img" "$TEST_TMP/after.img"
        e2fsck -fn "$TEST_TMP/after.img"
        ! cryptsetup open --test-passphrase --key-file "$TEST_TMP/build.key" "$IMG"
        ! cryptsetup luksDump "$IMG" | grep -q 'cvmcrypt-provision\|online-reencrypt'
        next_boot
        cvm --tpm "$TPM_TCTI" unlock --test "$IMG"
}

# hot_zone_cut: the re-key of $IMG was cut off inside a hot zone (a segment "in-reencryption").
hot_zone_cut() {
        cryptsetup luksDump --dump-json-metadata "$IMG" |
                python3 -c 'import json, sys; sys.exit(0 if any("in-reencryption" in s.get("flags", []) for s in json.load(sys.stdin)["segments"].values()) else 1)'
}

@test "background: a crash in a hot zone is restored before the volume opens; the data stays the same" {
        prepare_image
        "$PLAIN" "$IMG" "$TEST_TMP/build.key" "$TEST_TMP/before.img"
        cp --sparse=always "$IMG" "$TEST_TMP/prepared.img"
        # A foreground run killed inside a hot zone leaves it to recover (CRYPT_REENCRYPT_CRASH). The
        # write numbers are this image's (about 150 in all); the loop finds one that hit a hot zone.
        for k in 70 90 100 75 95; do
                cp --sparse=always "$TEST_TMP/prepared.img" "$IMG"
                kill_at "$k" "$CVMCRYPT" --config "$CVM_CONFIG" "${CMDLINE_OPT[@]}" --tpm "$TPM_TCTI" provision "$IMG" || continue
                hot_zone_cut && break
        done
        hot_zone_cut
        echo "provision-reencrypt=background" >>"$CVM_CONFIG"
        next_boot
        run provision
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"the re-key to a fresh volume key is pending (resumed an interrupted run)."* ]]
        ! hot_zone_cut
        cryptsetup luksDump "$IMG" | grep -q online-reencrypt
        sed -i '/^provision-reencrypt=/d' "$CVM_CONFIG"
        next_boot
        provision
        escrowed_key >"$TEST_TMP/rk"
        "$PLAIN" "$IMG" "$TEST_TMP/rk" "$TEST_TMP/after.img"
        cmp "$TEST_TMP/before.img" "$TEST_TMP/after.img"
}

@test "provision --resume-online: usage, no hand-over, a re-key not started, a volume provisioned already" {
        run cvm provision
        [ "$status" -eq "$EXIT_USAGE" ]
        [[ "$output" == *"provision: expected DEV [NAME]"* ]]
        run cvm provision --resume-online "$TEST_TMP/x.img"
        [ "$status" -eq "$EXIT_USAGE" ]
        [[ "$output" == *"give DEV and NAME, or neither"* ]]
        run cvm provision --resume-online --json "$TEST_TMP/x.img" root
        [ "$status" -eq "$EXIT_USAGE" ]
        prepare_image
        run cvm provision --resume-online "$IMG" root
        echo "$output"
        [ "$status" -eq "$EXIT_DEVICE" ]
        [[ "$output" == *"its re-key has not started (the boot provisions it)"* ]]
        echo "provision-reencrypt=background" >>"$CVM_CONFIG"
        provision
        uuid=$(cryptsetup luksUUID "$IMG")
        run cvm provision --resume-online "$IMG" root
        echo "$output"
        [ "$status" -eq "$EXIT_DENIED" ]
        [[ "$output" == *"no re-key passphrase cvmcrypt:reencrypt:$uuid in root's user keyring: the boot that opened it handed none over"* ]]
        # A key of the wrong size is not taken.
        head -c 16 /dev/urandom >"$TEST_TMP/short"
        user_key add "cvmcrypt:reencrypt:$uuid" "$TEST_TMP/short"
        run cvm provision --resume-online "$IMG" root
        user_key drop "cvmcrypt:reencrypt:$uuid"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"no re-key passphrase cvmcrypt:reencrypt:$uuid in root's user keyring: Bad message"* ]]
        # With a passphrase handed over, the online re-key needs the active mapping (none here):
        # it fails and leaves the re-key pending, which the foreground then finishes.
        head -c 32 /dev/urandom >"$TEST_TMP/pass"
        user_key add "cvmcrypt:reencrypt:$uuid" "$TEST_TMP/pass"
        run cvm provision --resume-online "$IMG" root
        user_key drop "cvmcrypt:reencrypt:$uuid"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"the online re-key of root failed"* ]]
        cryptsetup luksDump "$IMG" | grep -q online-reencrypt
        sed -i '/^provision-reencrypt=/d' "$CVM_CONFIG"
        next_boot
        provision
        run cvm provision --resume-online "$IMG" root
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"root: $IMG has no provisioning token: nothing to do."* ]]
}

# kill_at K CMD...: runs CMD and kills it at its K-th write/pwrite64 call; true if it was killed.
kill_at() {
        local k=$1 rc=0
        shift
        no_lsan strace -f -o /dev/null -e trace=write,pwrite64 -e "inject=write,pwrite64:signal=KILL:when=$k" "$@" \
                >/dev/null 2>&1 || rc=$?
        # A raw swtpm has no resource manager: drop what the killed process had loaded.
        tpm2_flushcontext -t >/dev/null 2>&1 || true
        tpm2_flushcontext -l >/dev/null 2>&1 || true
        tpm2_flushcontext -s >/dev/null 2>&1 || true
        [ "$rc" -eq 137 ]
}

@test "crash: provision killed at every write, then run again, ends provisioned with the same data" {
        command -v strace >/dev/null || skip "strace is not installed (scripts/deps.sh installs it)"
        prepare_image
        "$PLAIN" "$IMG" "$TEST_TMP/build.key" "$TEST_TMP/before.img"
        e2fsck -fn "$TEST_TMP/before.img" >/dev/null
        cp --sparse=always "$IMG" "$TEST_TMP/prepared.img"
        cmd=("$CVMCRYPT" --config "$CVM_CONFIG" "${CMDLINE_OPT[@]}" --tpm "$TPM_TCTI" provision "$IMG")
        no_lsan strace -f -o "$TEST_TMP/trace" -e trace=write,pwrite64 "${cmd[@]}" >/dev/null 2>&1
        n=$(grep -cE '^[0-9]+ +(write|pwrite64)\(' "$TEST_TMP/trace")
        hotzones=$(grep -cE '^[0-9]+ +write\([0-9]+, .*, 16777216\) += 16777216' "$TEST_TMP/trace" || true)
        [ "$n" -gt 100 ]
        [ "$hotzones" -ge 3 ]
        # CRASH_STRIDE=N tries every Nth write only. Every write (CRASH_STRIDE=1) takes about ten
        # minutes, a third of the suite's budget, so the suite tries every 3rd (its hot zones and
        # clean-up included) and the sanitizer tier (ASAN_OPTIONS set by scripts/test.sh) every 8th.
        stride=${CRASH_STRIDE:-3}
        [ -z "${ASAN_OPTIONS:-}" ] || stride=${CRASH_STRIDE:-8}
        ok=0 tried=0
        for k in $(seq 1 "$stride" "$n"); do
                tried=$((tried + 1))
                cp --sparse=always "$TEST_TMP/prepared.img" "$IMG"
                rm -f "$TEST_TMP/escrow.pem"
                next_boot
                cmd=("$CVMCRYPT" --config "$CVM_CONFIG" "${CMDLINE_OPT[@]}" --tpm "$TPM_TCTI" provision "$IMG")
                kill_at "$k" "${cmd[@]}" || { echo "not killed at write $k of $n"; return 1; }
                if ! out=$("${cmd[@]}" 2>&1); then
                        echo "killed at write $k of $n: the second run failed: $out"
                        continue
                fi
                escrowed_key >"$TEST_TMP/rk" 2>/dev/null || { echo "killed at write $k of $n: no escrow"; continue; }
                "$PLAIN" "$IMG" "$TEST_TMP/rk" "$TEST_TMP/after.img" || { echo "killed at $k: the escrowed key opens nothing"; continue; }
                cmp -s "$TEST_TMP/before.img" "$TEST_TMP/after.img" || { echo "killed at $k: the data changed"; continue; }
                e2fsck -fn "$TEST_TMP/after.img" >/dev/null 2>&1 || { echo "killed at $k: e2fsck"; continue; }
                cryptsetup open --test-passphrase --key-file "$TEST_TMP/build.key" "$IMG" 2>/dev/null &&
                        { echo "killed at $k: the build key still opens"; continue; }
                # The new TPM slot in the next boot: every 8th kill and the last ones (the end of the
                # re-key and the clean-up), where the header changes most.
                if [ $((k % 8)) -eq 0 ] || [ "$k" -gt $((n - 40)) ]; then
                        next_boot
                        "$CVMCRYPT" --config "$CVM_CONFIG" "${CMDLINE_OPT[@]}" --tpm "$TPM_TCTI" unlock --test "$IMG" >/dev/null 2>&1 ||
                                { echo "killed at $k: the TPM slot does not open"; continue; }
                fi
                ok=$((ok + 1))
        done
        echo "# crash test (provision): $tried of $n kill points ($hotzones hot zones), $ok provisioned with the same data" >&3
        [ "$ok" -eq "$tried" ]
}

@test "crash: two kills in a row (prepare, then re-key) still end provisioned with the same data" {
        command -v strace >/dev/null || skip "strace is not installed (scripts/deps.sh installs it)"
        prepare_image
        "$PLAIN" "$IMG" "$TEST_TMP/build.key" "$TEST_TMP/before.img"
        cp --sparse=always "$IMG" "$TEST_TMP/prepared.img"
        cmd=("$CVMCRYPT" --config "$CVM_CONFIG" "${CMDLINE_OPT[@]}" --tpm "$TPM_TCTI" provision "$IMG")
        for pair in "30 5" "60 40" "75 20" "90 3" "120 15" "150 1"; do
                set -- $pair
                cp --sparse=always "$TEST_TMP/prepared.img" "$IMG"
                kill_at "$1" "${cmd[@]}"
                kill_at "$2" "${cmd[@]}" || true
                "${cmd[@]}" >/dev/null
                escrowed_key >"$TEST_TMP/rk"
                "$PLAIN" "$IMG" "$TEST_TMP/rk" "$TEST_TMP/after.img"
                cmp "$TEST_TMP/before.img" "$TEST_TMP/after.img"
        done
}

@test "crash: image-prepare killed between hot zones of the encryption resumes with its token's key" {
        command -v strace >/dev/null || skip "strace is not installed (scripts/deps.sh installs it)"
        cp --sparse=always "$BASE" "$IMG"
        cmd=("$CVMCRYPT" --config "$CVM_CONFIG" "${CMDLINE_OPT[@]}" image-prepare "$IMG" --key-file "$TEST_TMP/build.key")
        no_lsan strace -f -o "$TEST_TMP/trace" -e trace=write,pwrite64 "${cmd[@]}" >/dev/null 2>&1
        # The hot zones' data writes (libcryptsetup 2.6 cannot resume an offline encryption killed in
        # its last step, which moves the first 16 MiB: cryptsetup itself fails there too).
        # The first two 16 MiB writes are the header in memory and its copy onto the image.
        mapfile -t zones < <(grep -E '^[0-9]+ +(write|pwrite64)\(' "$TEST_TMP/trace" | grep -nE ', 16777216\) += 16777216$' | cut -d: -f1)
        [ "${#zones[@]}" -ge 4 ]
        resumed=0
        for k in "${zones[@]:2:${#zones[@]}-3}"; do
                for kk in "$k" $((k + 3)); do
                        cp --sparse=always "$BASE" "$IMG"
                        rm -f "$TEST_TMP/build.key"
                        kill_at "$kk" "${cmd[@]}"
                        cryptsetup isLuks "$IMG"
                        run "${cmd[@]}"
                        echo "$output"
                        [ "$status" -eq 0 ]
                        [[ "$output" == *"finished the interrupted encryption"* ]]
                        "$PLAIN" "$IMG" "$TEST_TMP/build.key" "$TEST_TMP/plain.img"
                        e2fsck -fn "$TEST_TMP/plain.img" >/dev/null
                        plain_tree "$TEST_TMP/plain.img" "$TEST_TMP/out.$kk"
                        diff <(tree_sums "$TREE") <(tree_sums "$TEST_TMP/out.$kk")
                        resumed=$((resumed + 1))
                done
        done
        echo "# crash test (image-prepare): $resumed kills between hot zones resumed" >&3
}
