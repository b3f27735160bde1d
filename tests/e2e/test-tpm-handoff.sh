#!/usr/bin/env bash
# e2e: the vTPM state an image builder prepares on the host (host-mode swtpm: a persistent SRK and an
# NV index) is the TPM the VM sees, and it survives two boots while the PCRs start over at each boot.
# This is the enroll-before-boot path of design.md: host-mode swtpm on the VM's state dir, stop it,
# then the qemu-mode swtpm on the same dir for every boot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_require

t0=$(date +%s%N)
state=$E2E_TMP/vtpm
e2e_swtpm_host_start "$state"
tpm2_createprimary -Q -C o -g sha256 -G ecc256 -c "$E2E_TMP/srk.ctx"
tpm2_evictcontrol -Q -C o -c "$E2E_TMP/srk.ctx" 0x81000001
tpm2_nvdefine -Q 0x01500016 -C o -s 16 -a "ownerread|ownerwrite"
tpm2_nvdefine -Q 0x01500017 -C o -s 16 -a "ownerread|ownerwrite"
printf 'host-enrolled-16' | tpm2_nvwrite -Q 0x01500016 -C o -i -
e2e_swtpm_stop

cat >"$E2E_TMP/guest.sh" <<'GUEST'
export TPM2TOOLS_TCTI=device:/dev/tpmrm0
boot=$(sed -n 's/.*e2e\.boot=\([0-9]*\).*/\1/p' /proc/cmdline)
e2e_step "boot $boot: the host's persistent SRK and NV index are here"
tpm2 getcap handles-persistent | grep -q 0x81000001 || e2e_fail "no persistent SRK 0x81000001"
[ "$(tpm2 nvread 0x01500016 -C o -s 16)" = host-enrolled-16 ] || e2e_fail "NV 0x01500016 lost the host's value"
e2e_step "boot $boot: gate PCR 15 starts at zero"
tpm2 pcrread sha256:15 | grep -q ': 0x0000000000000000000000000000000000000000000000000000000000000000$' ||
        e2e_fail "PCR 15 is not zero at boot $boot"
tpm2 pcrextend 15:sha256=$(printf 'boot %s' "$boot" | sha256sum | cut -d' ' -f1)
case $boot in
1)
        printf 'guest-boot-1-wrt' | tpm2 nvwrite 0x01500017 -C o -i - || e2e_fail "NV write failed"
        ;;
2)
        [ "$(tpm2 nvread 0x01500017 -C o -s 16)" = guest-boot-1-wrt ] || e2e_fail "boot 1's NV write is lost"
        ;;
*) e2e_fail "no e2e.boot= on the kernel command line" ;;
esac
GUEST

e2e_initramfs "$E2E_TMP/initrd" "$E2E_TMP/guest.sh"
E2E_TPM_STATE=$state
E2E_CMDLINE="e2e.boot=1" e2e_boot tpm-handoff-1 "$E2E_TMP/initrd"
b1=$E2E_BOOT_SECONDS
E2E_CMDLINE="e2e.boot=2" e2e_boot tpm-handoff-2 "$E2E_TMP/initrd"
b2=$E2E_BOOT_SECONDS

# Back on the host, the state holds what the VM wrote.
e2e_swtpm_host_start "$state"
[ "$(tpm2_nvread 0x01500017 -C o -s 16)" = guest-boot-1-wrt ]
e2e_swtpm_stop
awk -v t=$(($(date +%s%N) - t0)) -v b1="$b1" -v b2="$b2" \
        'BEGIN { printf "e2e: tpm-handoff: boots %s s and %s s, total %.1f s\n", b1, b2, t / 1e9 }'
