#!/usr/bin/env bash
# bench/tempdisk.sh: format time and bytes written by `cvmcrypt tempdisk` for sparse disks of
# SIZES GiB (default 1 64 256), median of RUNS runs (default 5), in two tiers:
#   host  loop devices; the host kernel has no device-mapper, so a run ends after the guards and the
#         LUKS2 header (activation fails): time of the whole process, sectors the loop device wrote.
#   qemu  one VM (tests/e2e/lib.sh, TCG) with all the disks: guards, header, activation, mkfs.ext4,
#         mount; time from the guest's clock, sectors written from the guest's /sys/block/*/stat,
#         and the space the sparse image takes on the host afterwards. The guest's ftrace splits
#         the time in phases: cvmcrypt's exec to mkfs.ext4's exec (guards, header, activation),
#         mkfs.ext4 from exec to exit, and the mount(2) call.
# Target (issue 8): time and bytes flat in the disk size (within 10% from 1 to 256 GiB), the full
# format under 2 s in the qemu tier. Appends a section to bench/RESULTS.md.
# Usage: bench/tempdisk.sh [BUILD_DIR]   (default build/; run scripts/build.sh build first). Root.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
export CVMCRYPT=$build/cvmcrypt
SIZES=${SIZES:-1 64 256}
RUNS=${RUNS:-5}
[ -x "$CVMCRYPT" ] || { echo "no $CVMCRYPT: run scripts/build.sh build" >&2; exit 1; }
[ "$RUNS" -ge 3 ] || { echo "RUNS must be at least 3" >&2; exit 2; }

. "$top/tests/e2e/lib.sh"
e2e_require
work=$E2E_TMP
loops=()
cleanup_loops() {
        local l
        for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
}
trap 'cleanup_loops; e2e_cleanup' EXIT

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
: >"$work/empty"

# ---- host tier ----
declare -A host_ms host_kib
for s in $SIZES; do
        img=$work/host-$s.img
        truncate -s "${s}G" "$img"
        loop=$(losetup --find --show "$img")
        loops+=("$loop")
        : >"$work/host-$s.us"
        : >"$work/host-$s.kib"
        for _ in $(seq "$RUNS"); do
                w0=$(awk '{ print $7 }' "/sys/block/${loop#/dev/}/stat")
                t0=$(date +%s%N)
                rc=0
                "$CVMCRYPT" --config "$work/empty" --kernel-cmdline "$work/empty" tempdisk --device "$loop" \
                        >/dev/null 2>"$work/host.err" || rc=$?
                t1=$(date +%s%N)
                w1=$(awk '{ print $7 }' "/sys/block/${loop#/dev/}/stat")
                # Exit 6 at activation is the expected end on a host without device-mapper.
                if [ "$rc" -ne 6 ] || ! grep -q 'activating /dev/mapper/cvmcrypt-tempdisk failed' "$work/host.err"; then
                        echo "host run on $s GiB ended unexpectedly (exit $rc): $(cat "$work/host.err")" >&2
                        exit 1
                fi
                echo $(((t1 - t0) / 1000)) >>"$work/host-$s.us"
                echo $(((w1 - w0) / 2)) >>"$work/host-$s.kib"
        done
        host_ms[$s]=$(median <"$work/host-$s.us" | awk '{ printf "%.1f", $1 / 1000 }')
        host_kib[$s]=$(median <"$work/host-$s.kib")
        losetup -d "$loop"
        rm -f "$img"
done

# ---- qemu tier ----
disks=()
for s in $SIZES; do
        truncate -s "${s}G" "$work/vm-$s.img"
        disks+=("s$s=$work/vm-$s.img")
done
mkdir -p "$work/data"
echo "$SIZES" >"$work/data/sizes"
echo "$RUNS" >"$work/data/runs"
cat >"$work/guest.sh" <<'GUEST'
now_us() { sed -n 's/^now at \([0-9]*\) nsecs$/\1/p' /proc/timer_list | head -n 1 | awk '{ printf "%d", $1 / 1000 }'; }
: >/tmp/empty
T=/sys/kernel/tracing
mount -t tracefs tracefs "$T" || e2e_fail "cannot mount tracefs"
for e in sched/sched_process_exec sched/sched_process_exit syscalls/sys_enter_mount syscalls/sys_exit_mount; do
        echo 1 >"$T/events/$e/enable" || e2e_fail "cannot trace $e"
done
# Microseconds from cvmcrypt's exec to mkfs.ext4's exec, from that to its exit, and in mount(2).
phases() {
        awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) { t = substr($i, 1, length($i) - 1) * 1000000; break } }
                /sched_process_exec: filename=[^ ]*\/cvmcrypt / { t0 = t }
                /sched_process_exec: filename=[^ ]*\/mkfs\.ext4 / { t1 = t }
                /sched_process_exit: comm=mkfs\.ext4 / { t2 = t }
                /sys_mount\(/ { t3 = t }
                /sys_mount -> / { t4 = t }
                END { if (t0 && t1 && t2 && t3 && t4) printf "%d %d %d", t1 - t0, t2 - t1, t4 - t3 }' "$T/trace"
}
for s in $(cat /e2e/data/sizes); do
        dev=$(e2e_disk "s$s") || e2e_fail "no disk s$s"
        n=${dev#/dev/}
        for run in $(seq "$(cat /e2e/data/runs)"); do
                : >"$T/trace"
                w0=$(awk '{ print $7 }' "/sys/block/$n/stat")
                t0=$(now_us)
                cvmcrypt --config /tmp/empty --kernel-cmdline /tmp/empty tempdisk --device "$dev" >/tmp/out 2>&1 ||
                        e2e_fail "tempdisk on $s GiB failed: $(cat /tmp/out)"
                t1=$(now_us)
                sync
                w1=$(awk '{ print $7 }' "/sys/block/$n/stat")
                p=$(phases)
                [ -n "$p" ] || e2e_fail "no exec, exit or mount of the run on $s GiB in the trace: $(cat "$T/trace")"
                echo "BENCH $s $run $((t1 - t0)) $(((w1 - w0) / 2)) $p"
                umount /mnt/resource
                cryptsetup close cvmcrypt-tempdisk
        done
done
GUEST
e2e_initramfs "$work/initrd" "$work/guest.sh" "$work/data:/e2e/data"
E2E_TIMEOUT=${E2E_TIMEOUT:-900} e2e_boot tempdisk-bench "$work/initrd" "${disks[@]}" >"$work/boot.log" || {
        cat "$work/boot.log"
        exit 1
}
declare -A vm_ms vm_kib vm_alloc vm_phases
for s in $SIZES; do
        vm_ms[$s]=$(tr -d '\r' <"$E2E_LOG" | awk -v s="$s" '$1 == "BENCH" && $2 == s { print $4 }' | median |
                awk '{ printf "%.1f", $1 / 1000 }')
        vm_kib[$s]=$(tr -d '\r' <"$E2E_LOG" | awk -v s="$s" '$1 == "BENCH" && $2 == s { print $5 }' | median)
        vm_phases[$s]=$(for f in 6 7 8; do
                tr -d '\r' <"$E2E_LOG" | awk -v s="$s" -v f="$f" '$1 == "BENCH" && $2 == s { print $f }' | median |
                        awk '{ printf "%.1f", $1 / 1000 }'
                echo
        done | paste -sd / | sed 's|/| / |g')
        vm_alloc[$s]=$(du -k "$work/vm-$s.img" | cut -f1)
done

# ---- report ----
first=${SIZES%% *}
last=${SIZES##* }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }'; }
{
        echo
        echo "## tempdisk: $(date +%F) — \`bench/tempdisk.sh\` (RUNS=$RUNS, medians)"
        echo
        echo "Host tier (loop device; guards + LUKS2 header, no device-mapper so no activation):"
        echo
        echo "| disk | time ms (whole process) | KiB written |"
        echo "|---|---|---|"
        for s in $SIZES; do echo "| $s GiB | ${host_ms[$s]} | ${host_kib[$s]} |"; done
        echo
        echo "qemu tier (TCG, $(nproc) host CPUs; guards + header + activation + mkfs.ext4 + mount):"
        echo
        echo "| disk | time ms | of which: guards+header+activation / mkfs.ext4 / mount, ms | KiB written (guest) | image allocated on the host, KiB |"
        echo "|---|---|---|---|---|"
        for s in $SIZES; do echo "| $s GiB | ${vm_ms[$s]} | ${vm_phases[$s]} | ${vm_kib[$s]} | ${vm_alloc[$s]} |"; done
        echo
        echo "Ratio ${last} GiB / ${first} GiB: host time $(ratio "${host_ms[$first]}" "${host_ms[$last]}"), host bytes" \
                "$(ratio "${host_kib[$first]}" "${host_kib[$last]}"); qemu time $(ratio "${vm_ms[$first]}" "${vm_ms[$last]}")," \
                "qemu bytes $(ratio "${vm_kib[$first]}" "${vm_kib[$last]}") (target ≤ 1.10); qemu full format" \
                "${vm_ms[$last]} ms at $last GiB (target < 2000)."
} | tee -a "$top/bench/RESULTS.md"
