#!/usr/bin/env bash
# The main job, as far as this build goes: a qemu VM (Debian's kernel under TCG) with a swtpm vTPM
# and a LUKS2 root disk. Boot 1 reads the PCRs the firmware measured; the image is enrolled against
# them on the VM's TPM (as an image builder does with predicted values); boot 2 runs
# `cvmcrypt unlock` in the initramfs, which unseals the key in an encrypted session, activates the
# root through its checked header and mounts it, then shows that a changed PCR is refused by name
# and that the recovery key still works. Everything lives in a temporary directory; the qemu and
# swtpm processes started here are stopped by pid.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh
scripts/build.sh build
echo "== cvmcrypt $("$top/build/cvmcrypt" --version | cut -d' ' -f2): VM boot with vTPM unlock of a LUKS2 root"
CVMCRYPT=$top/build/cvmcrypt bash tests/e2e/test-tpm-unlock.sh
echo "== demo finished: the VM unlocked and mounted its LUKS2 root with the vTPM"
