#!/usr/bin/env bash
# The main job: a confidential VM's first boot. A qemu VM (Debian's kernel under TCG) with an
# Azure-like swtpm vTPM (test HCL report and AK), a LUKS2 root enrolled with --attest, a blank temp
# disk, and a dracut initramfs with the tree's module: `cvmcrypt boot` measures itself, attests, unlocks
# the root without a prompt, formats the temp disk with a fresh key and caps the gate PCR (case (a)
# of tests/e2e/test-boot.sh). Everything lives in a temporary directory; the qemu and swtpm
# processes started here are stopped by pid.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh
scripts/build.sh build
make -C build -j"$(nproc)" check TESTS= >/dev/null # the test fixtures the boot uses (no tests run)
echo "== cvmcrypt $("$top/build/cvmcrypt" --version | cut -d' ' -f2): a confidential VM's first boot (qemu, swtpm vTPM, dracut)"
CVMCRYPT=$top/build/cvmcrypt E2E_BOOT_DEMO=1 bash tests/e2e/test-boot.sh
echo "== demo finished"
