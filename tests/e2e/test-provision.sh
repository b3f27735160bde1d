#!/usr/bin/env bash
# e2e: first-boot provisioning in a VM, cut off by power loss. The host makes a root image with a
# file tree and runs `cvmcrypt image-prepare` on it. Each round boots the VM twice on the same disks
# and vTPM: boot A starts `cvmcrypt boot`, which finds the provisioning token, SIGKILLs it after a
# set delay (prepare, re-key, or not at all) and resets the VM at once (sysrq b: no sync, no
# unmount, as a power cut); boot B runs `cvmcrypt boot` again, whose provisioning must resume, end
# with the volume open through its new TPM slot and the provisioned event measured before the cap,
# e2fsck -n clean and every file's checksum as built. The host then opens the escrow on the "esp"
# disk with the admin key and checks the recovery key reads the same plaintext as the build key did.
# The background round (provision-reencrypt=background): boot A opens the volume with the re-key
# pending and handed over (keyring key, marker), runs `provision --resume-online` as
# cvmcrypt-reencrypt.service does, writes a file meanwhile, SIGKILLs it at half way and cuts the
# power; boot B opens it the same way, stops the online re-key with SIGTERM, runs it to its end with
# the file system in use, and checks as above (the files written during it included).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_require

plain=$(dirname "$CVMCRYPT")/tests/fixtures/luks2-plain
[ -x "$plain" ] || { e2e_log "no $plain (make check builds it)"; exit 1; }
data=$E2E_TMP/data
tree=$E2E_TMP/tree
mkdir -p "$data" "$tree/etc" "$tree/usr/share"
cp -r /usr/share/doc/bash /usr/share/doc/cryptsetup-bin "$tree/usr/share/"
head -c 20000000 /dev/urandom >"$tree/etc/random.bin"
echo "cvmcrypt provisioning e2e" >"$tree/etc/motd"
(cd "$tree" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sed 's|  \./|  /mnt/|' >"$data/sums"

base=$E2E_TMP/base.img
truncate -s 96M "$base"
mkfs.ext4 -q -F -b 4096 -L root -d "$tree" "$base"
: >"$E2E_TMP/empty.conf"
host() { "$CVMCRYPT" --config "$E2E_TMP/empty.conf" --kernel-cmdline /dev/null "$@"; }
host image-prepare "$base" --key-file "$E2E_TMP/build.key" --pcrs 7
"$plain" "$base" "$E2E_TMP/build.key" "$E2E_TMP/plain-before.img"
openssl req -x509 -newkey rsa:3072 -nodes -keyout "$E2E_TMP/admin.key" -out "$data/admin.pem" \
        -subj /CN=cvmcrypt-e2e-escrow -days 30 2>/dev/null
cat >"$data/cvmcrypt.conf" <<EOF
provision-escrow-cert=/e2e/data/admin.pem
provision-escrow-out=/esp/cvmcrypt-escrow.pem
tempdisk=0
EOF

cat >"$E2E_TMP/guest.sh" <<'GUEST'
dev=$(e2e_disk root) || e2e_fail "no disk with serial root"
esp=$(e2e_disk esp) || e2e_fail "no disk with serial esp"
mkdir -p /esp
mount -t ext4 "$esp" /esp || e2e_fail "cannot mount the esp disk"
# The volume's node is known only here; `boot` runs in an initrd (it checks /etc/initrd-release).
cp /e2e/data/cvmcrypt.conf /run/cvmcrypt.conf
echo "volume=$dev root" >>/run/cvmcrypt.conf
bg=$(sed -n 's/.*e2e.bg=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -z "$bg" ] || echo "provision-reencrypt=background" >>/run/cvmcrypt.conf
touch /etc/initrd-release
cvm() { cvmcrypt --config /run/cvmcrypt.conf --kernel-cmdline /proc/cmdline "$@"; }
state() { cryptsetup luksDump "$dev" | grep -E 'Requirements|cvmcrypt-|: luks2|reencrypt' | tr -s '\t ' ' ' | tr '\n' ';'; }
killus=$(sed -n 's/.*e2e.killus=\([0-9]*\).*/\1/p' /proc/cmdline)
# wait_log FILE TEXT PID: until FILE shows TEXT (true), or PID has ended first (false).
wait_log() {
        while ! grep -q "$2" "$1"; do
                kill -0 "$3" 2>/dev/null || return 1
                usleep 50000
        done
}
# Background: the volume is open with the re-key pending, handed over in root's user keyring
# (root-only permissions) with a marker that names the device, as cvmcrypt-reencrypt.service needs.
check_pending() {
        [ -b /dev/mapper/root ] || e2e_fail "boot did not open the volume"
        cryptsetup luksDump "$dev" | grep -q online-reencrypt || e2e_fail "no re-key pending: $(state)"
        [ "$(cat /run/cvmcrypt/reencrypt/root)" = "$dev" ] || e2e_fail "no marker for root"
        uuid=$(cryptsetup luksUUID "$dev")
        key=$(grep " cvmcrypt:reencrypt:$uuid: " /proc/keys) || e2e_fail "no re-key passphrase in the keyring"
        echo "E2E-KEY: $key"
        set -- $key
        [ "$5 $6 $7 $8" = "0b0b0000 0 0 user" ] || e2e_fail "the hand-over key: $key"
}
# boot_exec: cvmcrypt boot as this shell's child itself, so that kill reaches it.
boot_exec() { exec cvmcrypt --config /run/cvmcrypt.conf --kernel-cmdline /proc/cmdline boot; }
# online: what cvmcrypt-reencrypt.service runs. Not through cvm: $! must be cvmcrypt's pid, not a
# subshell's, for kill to reach it.
online() { exec cvmcrypt --config /run/cvmcrypt.conf --kernel-cmdline /proc/cmdline provision --resume-online; }
# sum_file FILE: its SHA-256 only.
sum_file() { sha256sum "$1" | cut -d' ' -f1; }
if [ -n "$bg" ] && [ -n "$killus" ]; then
        e2e_step "boot A: boot opens the volume with the re-key pending; the online re-key is killed at 50 %, then a power cut"
        cvm boot || e2e_fail "cvmcrypt boot failed"
        check_pending
        online >/run/online.log 2>&1 &
        pid=$!
        # The volume is in use while the re-key runs: a file written, synced, read back.
        mount -t ext4 /dev/mapper/root /mnt || e2e_fail "cannot mount the root during the re-key"
        head -c 4000000 /dev/urandom >/mnt/during.bin
        sync
        sum_file /mnt/during.bin >/esp/during.sum
        echo 3 >/proc/sys/vm/drop_caches
        [ "$(sum_file /mnt/during.bin)" = "$(cat /esp/during.sum)" ] || e2e_fail "the file written during the re-key reads back wrong"
        umount /mnt
        sync
        wait_log /run/online.log '50% re-keyed' "$pid" || { cat /run/online.log; e2e_fail "the online re-key ended before 50 %"; }
        kill -9 "$pid"
        echo "E2E-KILL: the online re-key killed at: $(grep -o '[0-9]*% re-keyed' /run/online.log | tail -1)"
        wait "$pid" || true
        echo "E2E-STATE: $(state)"
        umount /esp
        echo "E2E-RESULT: PASS $(sed -n 's/.*e2e.name=\([^ ]*\).*/\1/p' /proc/cmdline) $(sed -n 's/.*e2e.nonce=\([^ ]*\).*/\1/p' /proc/cmdline)"
        sleep 1
        echo 1 >/proc/sys/kernel/sysrq
        echo b >/proc/sysrq-trigger
        sleep 10
fi
if [ -n "$killus" ]; then
        e2e_step "boot A: boot provisions, SIGKILL after $killus us, then a power cut"
        t0=$(cut -d' ' -f1 /proc/uptime)
        boot_exec &
        pid=$!
        usleep "$killus"
        # A provision that has ended is a zombie until waited for: kill would still succeed.
        if grep -q '^State:.*[RSD]' "/proc/$pid/status" 2>/dev/null && kill -9 "$pid" 2>/dev/null; then
                echo "E2E-KILL: killed at uptime $(cut -d' ' -f1 /proc/uptime) (started $t0)"
        else
                echo "E2E-KILL: boot had ended"
        fi
        wait "$pid" || true
        # What the header reads on the disk now (libcryptsetup reads it with direct I/O).
        echo "E2E-STATE: $(state)"
        # The result line, then a reset without sync: what was not on the disk is lost.
        echo "E2E-RESULT: PASS $(sed -n 's/.*e2e.name=\([^ ]*\).*/\1/p' /proc/cmdline) $(sed -n 's/.*e2e.nonce=\([^ ]*\).*/\1/p' /proc/cmdline)"
        sleep 1
        echo 1 >/proc/sys/kernel/sysrq
        echo b >/proc/sysrq-trigger
        sleep 10
fi
before=$(state)
e2e_step "boot B: boot provisions, resuming (state: $before)"
t0=$(cut -d' ' -f1 /proc/uptime)
out=$(cvm boot 2>&1) || { echo "$out"; e2e_fail "cvmcrypt boot failed"; }
echo "$out"
echo "E2E-PROVISION-SECONDS: $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')"
echo "E2E-STATE: $(state)"
log=/run/log/systemd/tpm2-measure.log
case $before in
*cvmcrypt-provision*)
        case $out in *"provisioned LUKS2"*) ;; *) e2e_fail "boot did not say it provisioned" ;; esac
        # The event goes in at the cap, before the volume's own event and boot-done.
        events=$(grep -ao '"event":"[a-z-]*"' "$log" | cut -d'"' -f4 | tr '\n' ' ')
        case $events in *"provisioned volume boot-done "*) ;; *) e2e_fail "events in the log: $events" ;; esac
        ;;
*)
        # Boot A got to the end before the cut: this boot unlocks as usual.
        grep -q provisioned "$log" && e2e_fail "a provisioned volume was provisioned again"
        ;;
esac
if [ -n "$bg" ]; then
        check_pending
        # Stopped (as at shutdown), the online re-key leaves it pending and handed over.
        online >/run/online.log 2>&1 &
        pid=$!
        wait_log /run/online.log 're-keyed' "$pid" || { cat /run/online.log; e2e_fail "the online re-key ended at once"; }
        kill -TERM "$pid"
        wait "$pid" || { cat /run/online.log; e2e_fail "the online re-key failed on SIGTERM"; }
        grep -q "root: stopped; the re-key of $dev resumes" /run/online.log || { cat /run/online.log; e2e_fail "no clean stop"; }
        check_pending
        e2e_step "the online re-key runs to its end, the file system in use meanwhile"
        online >/run/online.log 2>&1 &
        pid=$!
        mount -t ext4 /dev/mapper/root /mnt || e2e_fail "cannot mount the root during the re-key"
        [ "$(sum_file /mnt/during.bin)" = "$(cat /esp/during.sum)" ] || e2e_fail "the file written in boot A differs"
        head -c 4000000 /dev/urandom >/mnt/during2.bin
        sync
        sum_file /mnt/during2.bin >/run/during2.sum
        umount /mnt
        wait "$pid" || { cat /run/online.log; e2e_fail "the online re-key failed"; }
        cat /run/online.log
        grep -q "root: re-keyed online (LUKS2 $uuid)" /run/online.log || e2e_fail "the online re-key did not end"
        [ ! -e /run/cvmcrypt/reencrypt/root ] || e2e_fail "the marker is still there"
        ! grep -q "cvmcrypt:reencrypt:" /proc/keys || e2e_fail "the hand-over key is still there"
fi
[ -b /dev/mapper/root ] || e2e_fail "boot did not open the volume"
cryptsetup luksDump "$dev" | grep -q cvmcrypt-provision && e2e_fail "the provisioning token is still there"
cryptsetup luksDump "$dev" | grep -q Requirements && e2e_fail "a re-key is still pending"
e2fsck -fn /dev/mapper/root || e2e_fail "e2fsck -n found problems"
mount -t ext4 -o ro /dev/mapper/root /mnt || e2e_fail "cannot mount the root"
sha256sum -c -s /e2e/data/sums || e2e_fail "file checksums differ"
if [ -n "$bg" ]; then
        [ "$(sum_file /mnt/during.bin)" = "$(cat /esp/during.sum)" ] || e2e_fail "the file written in boot A differs"
        [ "$(sum_file /mnt/during2.bin)" = "$(cat /run/during2.sum)" ] || e2e_fail "the file written during the re-key differs"
fi
umount /mnt
[ -s /esp/cvmcrypt-escrow.pem ] || e2e_fail "no escrow on the esp disk"
umount /esp
cryptsetup close root
e2e_step "done"
GUEST
e2e_initramfs "$E2E_TMP/initrd" "$E2E_TMP/guest.sh" "$data:/e2e/data"

# Rounds: kill delay in microseconds (0: no kill, one clean first boot). The delays land in prepare
# (TPM sealing, escrow), early and late in the re-key; the log shows where each one hit. "bg":
# provision-reencrypt=background, the online re-key killed at half way in boot A, stopped with
# SIGTERM and run to its end in boot B, with the file system in use meanwhile.
rounds=${E2E_PROVISION_KILLS:-"0 400000 1500000 4000000 9000000 bg"}
total=0
for us in $rounds; do
        root=$E2E_TMP/root.img
        esp=$E2E_TMP/esp.img
        cp --sparse=always "$base" "$root"
        truncate -s 16M "$esp"
        mkfs.ext4 -q -F "$esp"
        E2E_TPM_STATE=$E2E_TMP/tpm-$us
        mkdir -p "$E2E_TPM_STATE"
        bg=
        [ "$us" != bg ] || bg="e2e.bg=1"
        if [ "$us" != 0 ]; then
                E2E_CMDLINE="e2e.killus=${bg:+1}${bg:-$us} $bg" e2e_boot "provision-kill-$us" "$E2E_TMP/initrd" "root=$root" "esp=$esp"
                total=$(awk -v a="$total" -v b="$E2E_BOOT_SECONDS" 'BEGIN { print a + b }')
                grep -ao 'E2E-KILL: .*\|E2E-STATE: .*' "$E2E_LOG" | tr -d '\r' | sed 's/^/  /'
        fi
        E2E_CMDLINE="$bg" e2e_boot "provision-resume-$us" "$E2E_TMP/initrd" "root=$root" "esp=$esp"
        total=$(awk -v a="$total" -v b="$E2E_BOOT_SECONDS" 'BEGIN { print a + b }')
        grep -ao 'E2E-PROVISION-SECONDS: .*' "$E2E_LOG" | tr -d '\r' | sed 's/^/  /'
        # The escrow opens with the admin key, and its recovery key reads the data as built.
        debugfs -R "dump /cvmcrypt-escrow.pem $E2E_TMP/escrow.pem" "$esp" >/dev/null 2>&1
        openssl cms -decrypt -inform PEM -in "$E2E_TMP/escrow.pem" -inkey "$E2E_TMP/admin.key" |
                tr -d '-' >"$E2E_TMP/recovery.key"
        "$plain" "$root" "$E2E_TMP/recovery.key" "$E2E_TMP/plain-after.img"
        if [ -n "$bg" ]; then
                # The guest wrote files while the re-key ran: the file system is clean and holds them.
                e2fsck -fn "$E2E_TMP/plain-after.img" >/dev/null || { e2e_log "round $us: e2fsck"; exit 1; }
                debugfs -R "dump /during.bin $E2E_TMP/during.bin" "$E2E_TMP/plain-after.img" >/dev/null 2>&1
                debugfs -R "dump /during.sum $E2E_TMP/during.sum" "$esp" >/dev/null 2>&1
                [ "$(sha256sum <"$E2E_TMP/during.bin" | cut -d' ' -f1)" = "$(cat "$E2E_TMP/during.sum")" ] ||
                        { e2e_log "round $us: the file written during the re-key differs"; exit 1; }
        else
                cmp "$E2E_TMP/plain-before.img" "$E2E_TMP/plain-after.img" || { e2e_log "round $us: the data changed"; exit 1; }
        fi
        if cryptsetup open --test-passphrase --key-file "$E2E_TMP/build.key" "$root" 2>/dev/null; then
                e2e_log "round $us: the build-time key still opens the volume"
                exit 1
        fi
        e2e_log "round $us: provisioned, same data, escrow opens"
done
echo "e2e: provision: $(wc -w <<<"$rounds") rounds, boots total $total s"
