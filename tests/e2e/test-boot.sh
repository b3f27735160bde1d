#!/usr/bin/env bash
# e2e: `cvmcrypt boot` in a dracut systemd initramfs (the tree's dracut/91cvmcrypt module and units),
# on Debian's kernel under TCG, with an Azure-like vTPM: swtpm holding the test HCL report and AK
# (tests/fixtures/make-hcl-vtpm), refreshed in the guest by the paravisor stand-in
# (tests/tpm/tcti-paravisor.c). The root file system is an ext4 image inside LUKS2 whose token was
# enrolled with --attest on the host; a blank image is the temp disk. The root's /sbin/init checks
# what the initrd left behind and prints the result marker. Cases:
#   first-boot   root unlocked without a prompt, temp disk formatted, log and gate PCR as predicted,
#                and from the booted root the root token no longer unseals (capped)
#   reboot       the same again: the temp disk gets a new LUKS2 UUID (a new format, a new key)
#   changed      an initramfs with a changed configuration (gate PCR differs): no auto-unlock, the
#                passphrase prompt (typed on the console), no secret on the console
#   bad-report   the HCL report's signature is bad: attestation fails, the TPM refuses PCR 15
#   swapped      an attacker's LUKS2 volume with the root's UUID and the real token, opened with the
#                attacker's passphrase at the prompt: its init cannot unseal the real token
#   initramfs-tools  the first boot again, from an initramfs made by mkinitramfs with hooks/
#   dracut-nosystemd the first boot again, from a dracut initramfs without systemd (the initqueue
#                hook runs `cvmcrypt boot`, dracut's cryptroot-ask finds the root open)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_require
BUILD=$(dirname "$CVMCRYPT")
for f in "$BUILD/tests/fixtures/snp-fixture" "$BUILD/tests/tpm/libtss2-tcti-cvmparavisor.so"; do
        [ -x "$f" ] || [ -f "$f" ] || { e2e_log "$f not built: run make check first"; exit 1; }
done
e2e_kernel
start=$SECONDS

T=$E2E_TMP
pv=$T/pv
state=$T/tpm
mkdir -p "$pv" "$state" "$T/etc/anchors" "$T/etc/certs" "$T/rootfs"
sh "$E2E_TOP/tests/fixtures/make-test-chain" "$T/chain" >/dev/null 2>&1
cp "$T/chain/anchors/"*.pem "$T/etc/anchors/"
cp "$T/chain/vcek-milan.pem" "$T/etc/certs/vcek.pem"
cp "$T/chain/ask-milan.pem" "$T/etc/certs/ask.pem"
printf '{"debug": false}\n' >"$T/etc/policy.json"
passphrase="e2e-root-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$passphrase" >"$T/root-key"
attacker="e2e-attacker-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$attacker" >"$T/attacker-key"

# The Azure-like vTPM: AK at 0x81000003, HCL report in NV 0x01400001, request index 0x01400002.
e2e_swtpm_host_start "$state"
sh "$E2E_TOP/tests/fixtures/make-hcl-vtpm" "$BUILD/tests/fixtures/snp-fixture" "$T/chain" "$T/vtpm" >/dev/null
e2e_swtpm_stop
# The paravisor's side in the guest: a new HCL report for the nonce the guest writes (with a bad
# signature when the kernel command line says so, for the bad-report case).
cp "$BUILD/tests/fixtures/snp-fixture" "$T/chain/vcek-milan.key" "$T/vtpm/akpub.pem" "$pv/"
cat >"$pv/refresh" <<EOF
#!/bin/sh
sig=
case " \$(cat /proc/cmdline) " in *" e2e.badsig=1 "*) sig=--bad-sig ;; esac
exec $pv/snp-fixture hcl $pv/vcek-milan.key $pv/akpub.pem "\$1" \$sig
EOF
chmod 755 "$pv/refresh"

# make_root IMAGE KEYFILE [UUID]: the root file system in LUKS2, encrypted offline.
make_root() {
        truncate -s 96M "$1"
        mkfs.ext4 -q -F -L e2e-root -d "$T/rootfs" "$1" 64M
        cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M --batch-mode \
                --pbkdf pbkdf2 --pbkdf-force-iterations 1000 ${3:+--uuid "$3"} --key-file "$2" "$1" >/dev/null
}

# The root's content: static busybox, cvmcrypt with its libraries, and an init that checks.
stage=$T/rootfs
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,run,tmp,mnt,e2e,etc} "$stage"/usr/{lib,lib64}
ln -s usr/lib "$stage/lib"
ln -s usr/lib64 "$stage/lib64"
# systemd switches only into something that looks like an OS tree.
printf 'ID=cvmcrypt-e2e\nNAME="cvmcrypt e2e root"\n' >"$stage/etc/os-release"
cp "$(command -v busybox)" "$stage/bin/busybox"
chroot "$stage" /bin/busybox --install -s /bin
e2e__install "$stage" "$CVMCRYPT" /usr/sbin/cvmcrypt
for lib in libtss2-tctildr.so.0 libtss2-tcti-device.so.0; do
        src=$(e2e__libpath "$lib")
        e2e__install "$stage" "$src" "$(e2e__usrpath "$src")"
done
echo "/usr/lib/$E2E_MULTIARCH" >"$stage/etc/ld.so.conf"
ldconfig -r "$stage" 2>/dev/null || true
mkdir -p "$stage$T/etc"
cp -a "$T/etc/." "$stage$T/etc/"
printf 'attest = hcl-nv\npolicy = %s\nanchors = %s\n' "$T/etc/policy.json" "$T/etc/anchors" >"$stage/e2e/root.conf"
cat >"$stage/sbin/init" <<'ROOT'
#!/bin/sh
# The booted root (or the attacker's): checks what the initrd did and prints the result marker.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
name=unnamed nonce=none case=
for a in $(cat /proc/cmdline); do
        case $a in
        e2e.name=*) name=${a#*=} ;;
        e2e.nonce=*) nonce=${a#*=} ;;
        e2e.case=*) case=${a#*=} ;;
        esac
done
echo "E2E-INIT: root init, case $case, uptime $(cut -d' ' -f1 /proc/uptime) s"
finish() {
        echo "E2E-TIME: root init at the end $(cut -d' ' -f1 /proc/uptime) s"
        echo "$1"
        sync
        poweroff -f
        echo o >/proc/sysrq-trigger
        sleep 10
}
fail() {
        echo "E2E-FAIL: $*"
        finish "E2E-RESULT: FAIL $name $nonce $*"
}
kmsg() { dmesg | grep -F -- "$1" >/dev/null; }
cvm() { cvmcrypt --config /e2e/root.conf --kernel-cmdline /dev/null --tpm device:/dev/tpmrm0 "$@"; }
disk() {
        for d in /sys/block/vd*; do [ "$(cat "$d/serial" 2>/dev/null)" = "$1" ] && { echo "/dev/${d##*/}"; return 0; }; done
        return 1
}
log=/run/log/systemd/tpm2-measure.log
events=$(tr '\036' '\n' <"$log" | sed -n 's/.*"content":{"event":"\([a-z-]*\)".*/\1/p' | tr '\n' ' ')
echo "E2E-EVENTS: $events"
dmesg | grep -F 'cvmcrypt' | sed 's/^/E2E-KMSG: /'
root=$(disk root) || fail "no root disk"

# Whatever happened in the initrd, the gate is capped: the real token does not unseal from here.
out=$(cvm unlock "$root" --test 2>&1) && fail "the root token unsealed after boot: $out"
echo "E2E-UNSEAL: $out"
echo "$out" | grep -qF "PCR 15 was capped in this boot" || fail "the refusal does not say capped"
echo "$out" | grep -qF "the TPM refused: PCR 15 differs from the sealed policy" || fail "the TPM did not refuse by PCR 15"
cvm measure --verify >/dev/null || fail "the event log does not replay to the PCRs"

case $case in
first-boot | reboot | initramfs-tools | dracut-nosystemd)
        [ "$events" = "binary config anchors policy attested volume boot-done " ] || fail "events: $events"
        kmsg "boot: attest: HCL report from vTPM NV 0x01400001: Milan VCEK" || fail "no attestation in the kernel log"
        kmsg "opened as luks-" || fail "the root was not opened by cvmcrypt"
        kmsg "boot: cap: PCR 15 extended with 1 volume event and cvmcrypt:boot-done" || fail "no cap in the kernel log"
        [ -b /dev/mapper/cvmcrypt-tempdisk ] || fail "no temp disk mapping"
        [ -f /run/systemd/system/mnt-resource.mount ] || fail "no mount unit for the temp disk"
        mount -t ext4 /dev/mapper/cvmcrypt-tempdisk /mnt || fail "the temp disk does not mount"
        umount /mnt
        tmp=$(disk tempdisk)
        echo "E2E-TEMPDISK: $(dd if="$tmp" bs=1 skip=168 count=36 2>/dev/null)"
        # The sha256 digests of the gate PCR's records, for the host to replay against predict.
        echo "E2E-DIGESTS: $(tr '\036' '\n' <"$log" | sed -n 's/.*"hashAlg":"sha256","digest":"\([0-9a-f]*\)".*/\1/p' | tr '\n' ' ')"
        ;;
changed)
        [ "$events" = "binary config anchors policy attested boot-done " ] || fail "events: $events"
        kmsg "PCR 15 differs from the sealed policy" || fail "the initrd's refusal does not name PCR 15"
        ;;
bad-report)
        [ "$events" = "binary config anchors policy boot-done " ] || fail "events: $events"
        kmsg "boot: attest: attestation failed: report-signature: report signature invalid" || fail "no attestation failure"
        kmsg "the TPM refused: PCR 15 differs from the sealed policy" || fail "the TPM's refusal is not in the kernel log"
        ;;
swapped)
        [ "$events" = "binary config anchors policy attested boot-done " ] || fail "events: $events"
        kmsg "volume swapped or header forged" || fail "the swapped volume was not recognised"
        [ -f /e2e/attacker ] || fail "this is not the attacker's root"
        ;;
*) fail "unknown case '$case'" ;;
esac
finish "E2E-RESULT: PASS $name $nonce"
ROOT
chmod 755 "$stage/sbin/init"

root=$T/root.img
make_root "$root" "$T/root-key"
uuid=$(cryptsetup luksUUID "$root")
vk=$(cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$T/root-key" "$root" 2>/dev/null |
        sed -n '/MK dump:/,/^[^ \t]/p' | tr -d ' \t\n' | sed 's/MKdump://; s/[^0-9a-f]//g')
[ "${#vk}" -eq 128 ] || { e2e_log "cannot read the root's volume key for the console check"; exit 1; }
tempdisk=$T/tempdisk.img
truncate -s 64M "$tempdisk"

conf=$T/etc/cvmcrypt.conf
cat >"$conf" <<EOF
tpm = cvmparavisor:refresh=$pv/refresh:device:/dev/tpmrm0
tpm-timeout = 20
attest = hcl-nv
attest-certs = $T/etc/certs
policy = $T/etc/policy.json
anchors = $T/etc/anchors
volume = UUID=$uuid
tempdisk = /dev/disk/by-id/virtio-tempdisk
EOF

# Enroll on the host against the VM's TPM, bound to the gate PCR as predicted with attestation.
e2e_swtpm_host_start "$state"
"$CVMCRYPT" --config "$conf" --kernel-cmdline /dev/null --tpm "$E2E_TPM_TCTI" enroll "$root" \
        --unlock-key-file "$T/root-key" --pcrs 15 --attest >/dev/null
predicted=$("$CVMCRYPT" --config "$conf" --kernel-cmdline /dev/null predict)
e2e_swtpm_stop

extras=(--include "$pv" "$pv" --include "$BUILD/tests/tpm/libtss2-tcti-cvmparavisor.so"
        "/usr/lib/$E2E_MULTIARCH/libtss2-tcti-cvmparavisor.so")
t0=$SECONDS
e2e_dracut "$T/initrd" "$conf" "${extras[@]}"
e2e_log "dracut initramfs: $((SECONDS - t0)) s, $(stat -c %s "$T/initrd") bytes"
E2E_TPM_STATE=$state
cmdline="root=/dev/mapper/luks-$uuid rootfstype=ext4 rd.luks.uuid=$uuid"

# no_secret NAME: neither passphrase nor the volume key on that boot's console.
no_secret() {
        ! grep -aqF -e "$passphrase" -e "$attacker" -e "${vk:0:32}" "$T/$1.serial.log" ||
                { e2e_log "boot $1: a secret is on the console"; exit 1; }
}

E2E_CMDLINE="$cmdline e2e.case=first-boot"
e2e_boot boot-first "$T/initrd" "root=$root" "tempdisk=$tempdisk"
no_secret boot-first
! grep -aq "Please enter passphrase" "$E2E_LOG" || { e2e_log "first boot: a passphrase prompt"; exit 1; }
first_uuid=$(sed -n 's/.*E2E-TEMPDISK: \([0-9a-f-]\{36\}\).*/\1/p' "$E2E_LOG" | head -n 1)
# The gate PCR as predicted: the log's records up to the attested event replay to predict's value.
replayed=$(sed -n 's/.*E2E-DIGESTS: \([0-9a-f ]*\).*/\1/p' "$E2E_LOG" | head -n 1 | python3 -c '
import hashlib, sys
v = bytes(32)
for d in sys.stdin.read().split()[:5]:
    v = hashlib.sha256(v + bytes.fromhex(d)).digest()
print(v.hex())')
[ "15=$replayed" = "$predicted" ] || { e2e_log "gate PCR after attestation $replayed, predicted $predicted"; exit 1; }
e2e_log "first boot: gate PCR after attestation = predicted ($predicted)"
# E2E_BOOT_DEMO=1 (scripts/demo.sh): the first boot is the demo; say what happened and stop.
if [ -n "${E2E_BOOT_DEMO:-}" ]; then
        echo "== what the initramfs did (from the VM's kernel log):"
        grep -a 'cvmcrypt' "$E2E_LOG" | grep -aiE 'measur|attest|unlock|activated|tempdisk|temp disk|cap' | sed 's/^/   /' | head -n 20
        echo "== root unlocked without a prompt, attested (gate PCR 15 = predicted), temp disk formatted with a fresh key ($first_uuid), gate capped"
        exit 0
fi

E2E_CMDLINE="$cmdline e2e.case=reboot"
e2e_boot boot-reboot "$T/initrd" "root=$root" "tempdisk=$tempdisk"
second_uuid=$(sed -n 's/.*E2E-TEMPDISK: \([0-9a-f-]\{36\}\).*/\1/p' "$E2E_LOG" | head -n 1)
[ -n "$first_uuid" ] && [ -n "$second_uuid" ] && [ "$first_uuid" != "$second_uuid" ] ||
        { e2e_log "temp disk UUID '$first_uuid' then '$second_uuid'"; exit 1; }
e2e_log "reboot: temp disk reformatted ($first_uuid -> $second_uuid)"

# A changed initramfs: one more line in the measured configuration.
cp "$conf" "$T/changed.conf"
echo "# changed" >>"$T/changed.conf"
e2e_dracut "$T/initrd-changed" "$T/changed.conf" "${extras[@]}"
E2E_TYPE_AFTER="Please enter passphrase" E2E_TYPE_TEXT=$passphrase E2E_CMDLINE="$cmdline e2e.case=changed" \
        e2e_boot boot-changed "$T/initrd-changed" "root=$root" "tempdisk=$tempdisk"
no_secret boot-changed

E2E_TYPE_AFTER="Please enter passphrase" E2E_TYPE_TEXT=$passphrase E2E_CMDLINE="$cmdline e2e.case=bad-report e2e.badsig=1" \
        e2e_boot boot-bad-report "$T/initrd" "root=$root" "tempdisk=$tempdisk"
no_secret boot-bad-report

# The swapped volume: the attacker's root, LUKS2 with the real UUID, the real token imported.
touch "$stage/e2e/attacker"
swapped=$T/attacker.img
make_root "$swapped" "$T/attacker-key" "$uuid"
printf '%s' "$attacker-2" >"$T/attacker-key2"
cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$T/attacker-key" \
        --new-key-slot "$(cryptsetup token export --token-id 0 "$root" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keyslots"][0])')" \
        "$swapped" "$T/attacker-key2"
cryptsetup token export --token-id 0 "$root" | cryptsetup token import --token-id 0 "$swapped"
E2E_TYPE_AFTER="Please enter passphrase" E2E_TYPE_TEXT=$attacker E2E_CMDLINE="$cmdline e2e.case=swapped" \
        e2e_boot boot-swapped "$T/initrd" "root=$swapped" "tempdisk=$tempdisk"
no_secret boot-swapped

# The first boot again, from an initramfs-tools initramfs (hooks/), on the same TPM and disks.
cat >"$T/e2e-paravisor" <<EOF
#!/bin/sh
[ "\$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
mkdir -p "\$DESTDIR$pv"
cp -a "$pv/." "\$DESTDIR$pv/"
copy_exec "$BUILD/tests/tpm/libtss2-tcti-cvmparavisor.so" /usr/lib/$E2E_MULTIARCH/
EOF
chmod 755 "$T/e2e-paravisor"
t0=$SECONDS
e2e_mkinitramfs "$T/initrd-itools" "$conf" "$T/e2e-paravisor"
e2e_log "initramfs-tools initramfs: $((SECONDS - t0)) s, $(stat -c %s "$T/initrd-itools") bytes"
E2E_CMDLINE="root=/dev/mapper/luks-$uuid rootfstype=ext4 e2e.case=initramfs-tools"
e2e_boot boot-initramfs-tools "$T/initrd-itools" "root=$root" "tempdisk=$tempdisk"
no_secret boot-initramfs-tools

# The first boot again, from a dracut initramfs without systemd (shell init, initqueue hook).
t0=$SECONDS
E2E_DRACUT_MODULES="base bash udev-rules kernel-modules" e2e_dracut "$T/initrd-nosystemd" "$conf" "${extras[@]}"
e2e_log "dracut initramfs without systemd: $((SECONDS - t0)) s, $(stat -c %s "$T/initrd-nosystemd") bytes"
E2E_CMDLINE="$cmdline e2e.case=dracut-nosystemd"
e2e_boot boot-dracut-nosystemd "$T/initrd-nosystemd" "root=$root" "tempdisk=$tempdisk"
no_secret boot-dracut-nosystemd

e2e_log "boot tests total $((SECONDS - start)) s"
