/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Temp disk detection and the sysfs-based guards on fake sysfs, /dev and /proc trees (the roots are
 * a parameter of the detection code, so production reads the real ones and nothing here weakens
 * it); unit names, runtime units, swap header and identity string. Device nodes in the fake /dev are
 * plain files, so the whole-disk guard's node check refuses them: each case looks at the guard it
 * is about. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"
#include "tap.h"
#include "tempdisk.h"

static char top[256];
static TempdiskRoots roots;
static char sys_dir[300], dev_dir[300], proc_dir[300];

static void mkdirs(const char *path) {
        char buf[1024];

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        (void) mkdir(buf, 0755);
                        *p = '/';
                }
        (void) mkdir(buf, 0755);
}

static void put(const char *text, const char *fmt, ...) {
        char path[1024], dir[1024];
        va_list ap;
        FILE *f;

        va_start(ap, fmt);
        vsnprintf(path, sizeof(path), fmt, ap);
        va_end(ap);
        snprintf(dir, sizeof(dir), "%s", path);
        *strrchr(dir, '/') = '\0';
        mkdirs(dir);
        f = fopen(path, "w");
        if (!f) {
                perror(path);
                exit(2);
        }
        fputs(text, f);
        fclose(f);
}

/* link at path (under top) pointing to target (as given: relative or absolute). */
static void ln(const char *target, const char *fmt, ...) {
        char path[1024], dir[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(path, sizeof(path), fmt, ap);
        va_end(ap);
        snprintf(dir, sizeof(dir), "%s", path);
        *strrchr(dir, '/') = '\0';
        mkdirs(dir);
        (void) unlink(path);
        if (symlink(target, path) < 0) {
                perror(path);
                exit(2);
        }
}

static void fresh_tree(void) {
        char cmd[512];

        if (*top) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
                (void) !system(cmd);
        }
        snprintf(top, sizeof(top), "/tmp/cvmcrypt-tempdisk-test.XXXXXX");
        if (!mkdtemp(top)) {
                perror("mkdtemp");
                exit(2);
        }
        snprintf(sys_dir, sizeof(sys_dir), "%s/sys", top);
        snprintf(dev_dir, sizeof(dev_dir), "%s/dev", top);
        snprintf(proc_dir, sizeof(proc_dir), "%s/proc", top);
        roots = (TempdiskRoots){ .sys = sys_dir, .dev = dev_dir, .proc = proc_dir };
        mkdirs(sys_dir);
        mkdirs(dev_dir);
        put("", "%s/self/mountinfo", proc_dir);
        put("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n", "%s/swaps", proc_dir);
        mkdirs(sys_dir);
        put("", "%s/block/.keep", sys_dir); /* /sys/block exists even with no disk */
}

/* A block device at DEVPATH (under /sys/devices) named NAME with MAJ:MIN, linked from /sys/block
 * (disks only), /sys/class/block and /sys/dev/block, with a node in /dev. */
static void block_dev(const char *devpath, const char *name, const char *majmin, bool disk) {
        char target[600], num[32];

        put(majmin, "%s/devices/%s/dev", sys_dir, devpath);
        snprintf(num, sizeof(num), "%.*s", (int) strcspn(majmin, "\n"), majmin);
        snprintf(target, sizeof(target), "../devices/%s", devpath);
        if (disk)
                ln(target, "%s/block/%s", sys_dir, name);
        snprintf(target, sizeof(target), "../../devices/%s", devpath);
        ln(target, "%s/class/block/%s", sys_dir, name);
        ln(target, "%s/dev/block/%s", sys_dir, num);
        put("", "%s/%s", dev_dir, name);
        snprintf(target, sizeof(target), "%s/devices/%s/holders", sys_dir, devpath);
        mkdirs(target);
        snprintf(target, sizeof(target), "%s/devices/%s/slaves", sys_dir, devpath);
        mkdirs(target);
}

/* A Hyper-V SCSI disk: VMBus device GUID with device_id, SCSI address H:C:T:L, block device NAME. */
static void scsi_disk(const char *guid, const char *device_id, const char *addr, const char *name, const char *majmin,
                      const char *vendor, const char *model) {
        char scsi[512], blk[700], up[64];
        unsigned h = 0;

        sscanf(addr, "%u", &h);
        snprintf(scsi, sizeof(scsi), "LNXSYSTM:00/VMBUS:00/%s/host%u/target%u:0:0/%s", guid, h, h, addr);
        put(device_id, "%s/devices/LNXSYSTM:00/VMBUS:00/%s/device_id", sys_dir, guid);
        put(vendor, "%s/devices/%s/vendor", sys_dir, scsi);
        put(model, "%s/devices/%s/model", sys_dir, scsi);
        snprintf(blk, sizeof(blk), "%s/block/%s", scsi, name);
        block_dev(blk, name, majmin, true);
        snprintf(up, sizeof(up), "../../../%s", addr);
        ln(up, "%s/devices/%s/device", sys_dir, blk);
}

static void nvme_disk(unsigned ctrl, unsigned ns, const char *model, const char *serial, const char *majmin) {
        char ctrl_dir[256], blk[512], name[32], nsid[16];

        snprintf(ctrl_dir, sizeof(ctrl_dir), "pci0000:00/0000:00:%02x.0/nvme/nvme%u", ctrl + 4, ctrl);
        snprintf(name, sizeof(name), "nvme%un%u", ctrl, ns);
        snprintf(nsid, sizeof(nsid), "%u\n", ns);
        put(model, "%s/devices/%s/model", sys_dir, ctrl_dir);
        put(serial, "%s/devices/%s/serial", sys_dir, ctrl_dir);
        snprintf(blk, sizeof(blk), "%s/%s", ctrl_dir, name);
        block_dev(blk, name, majmin, true);
        put(nsid, "%s/devices/%s/nsid", sys_dir, blk);
        ln("..", "%s/devices/%s/device", sys_dir, blk); /* the controller */
}

static Config cfg_default(void) {
        Config c;

        config_init(&c);
        return c;
}

static int detect(Config *c, const char *device, TempdiskDisk *disks, size_t *n, char *why) {
        return tempdisk_detect(&roots, c, device, disks, TEMPDISK_DISKS_MAX, n, why, TEMPDISK_WHY_LEN);
}

#define GEN1_ROOT "{00000000-0000-8899-0000-000000000000}"
#define GEN1_RESOURCE "{00000000-0001-8899-0000-000000000000}"
#define GEN2_SCSI0 "{f8b3781a-1e82-4818-a1c3-63d806ec15bb}"
#define GEN2_SCSI1 "{f8b3781b-1e82-4818-a1c3-63d806ec15bb}"
#define MODEL "Virtual Disk    \n"
#define VENDOR "Msft    \n"

static void test_gen1(void) {
        TempdiskDisk d[TEMPDISK_DISKS_MAX];
        char why[TEMPDISK_WHY_LEN] = "";
        Config c = cfg_default();
        size_t n = 9;
        int r;

        fresh_tree();
        scsi_disk("00000000-0000-8899-0000-000000000000", GEN1_ROOT "\n", "0:0:0:0", "sda", "8:0\n", VENDOR, MODEL);
        scsi_disk("00000000-0001-8899-0000-000000000000", GEN1_RESOURCE "\n", "1:0:1:0", "sdb", "8:16\n", VENDOR, MODEL);
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 1, "Gen1: one disk found by identity (%d, %zu, %s)", r, n, why);
        CHECK(n == 1 && strcmp(d[0].name, "sdb") == 0 && d[0].source == TEMPDISK_SOURCE_VMBUS,
              "Gen1: the resource controller's disk sdb, found through VMBus");
        CHECK(n == 1 && strcmp(d[0].id, "vmbus:" GEN1_RESOURCE ":lun0") == 0, "Gen1: identity %s", n ? d[0].id : "");
        CHECK(n == 1 && d[0].devnum == makedev(8, 16), "Gen1: device number from sysfs");
        config_done(&c);
}

static void test_gen2(void) {
        TempdiskDisk d[TEMPDISK_DISKS_MAX];
        char why[TEMPDISK_WHY_LEN] = "";
        Config c = cfg_default();
        size_t n = 9;
        int r;

        fresh_tree();
        scsi_disk("f8b3781a-1e82-4818-a1c3-63d806ec15bb", GEN2_SCSI0 "\n", "0:0:0:0", "sda", "8:0\n", VENDOR, MODEL);
        /* LUN 1 on the same controller is the resource disk; the data disk controller's LUN 1 is not. */
        put(GEN2_SCSI0 "\n", "%s/devices/LNXSYSTM:00/VMBUS:00/f8b3781a-1e82-4818-a1c3-63d806ec15bb/device_id", sys_dir);
        {
                char blk[512];
                const char *scsi = "LNXSYSTM:00/VMBUS:00/f8b3781a-1e82-4818-a1c3-63d806ec15bb/host0/target0:0:1/0:0:0:1";

                put(VENDOR, "%s/devices/%s/vendor", sys_dir, scsi);
                put(MODEL, "%s/devices/%s/model", sys_dir, scsi);
                snprintf(blk, sizeof(blk), "%s/block/sdb", scsi);
                block_dev(blk, "sdb", "8:16\n", true);
                ln("../../../0:0:0:1", "%s/devices/%s/device", sys_dir, blk);
        }
        scsi_disk("f8b3781b-1e82-4818-a1c3-63d806ec15bb", GEN2_SCSI1 "\n", "1:0:0:1", "sdc", "8:32\n", VENDOR, MODEL);
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 1 && strcmp(d[0].name, "sdb") == 0,
              "Gen2: LUN 1 of the first controller is the resource disk; LUN 0 and the data controller are not (%s)",
              n ? d[0].name : why);
        CHECK(n == 1 && strcmp(d[0].id, "vmbus:" GEN2_SCSI0 ":lun1") == 0, "Gen2: identity %s", n ? d[0].id : "");

        /* The udev link agrees with the scan: one disk, the scan's identity. */
        ln("../../sdb", "%s/disk/azure/resource", dev_dir);
        n = 9;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 1 && d[0].source == TEMPDISK_SOURCE_VMBUS, "link and scan agree: one disk (%zu)", n);

        /* The link names another disk than the scan: refuse to guess. */
        ln("../../sdc", "%s/disk/azure/resource", dev_dir);
        n = 9;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == -EUCLEAN && strstr(why, "two disks claim to be the resource disk"), "link and scan disagree: %s", why);
        config_done(&c);
}

static void test_link_only_and_negatives(void) {
        TempdiskDisk d[TEMPDISK_DISKS_MAX];
        char why[TEMPDISK_WHY_LEN] = "";
        Config c = cfg_default();
        size_t n = 9;
        int r;

        fresh_tree();
        /* Not Hyper-V (vendor), wrong model, a virtio disk, an Azure remote NVMe OS disk. */
        scsi_disk("00000000-0001-8899-0000-000000000000", GEN1_RESOURCE "\n", "1:0:1:0", "sdb", "8:16\n",
                  "QEMU    \n", MODEL);
        scsi_disk("00000000-0001-8899-0000-000000000001", "{00000000-0001-8899-0000-000000000001}\n", "2:0:1:0", "sdc",
                  "8:32\n", VENDOR, "Virtual CD/ROM  \n");
        block_dev("pci0000:00/0000:00:05.0/virtio3/block/vdb", "vdb", "254:16\n", true);
        nvme_disk(0, 1, "MSFT NVMe Accelerator v1.0              \n", "OSDISK\n", "259:0\n");
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 0, "random disks are not temp disks (%d, %zu: %s)", r, n, n ? d[0].name : why);

        /* The udev link alone is an identity. */
        ln("../../vdb", "%s/disk/azure/resource", dev_dir);
        n = 9;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 1 && strcmp(d[0].name, "vdb") == 0 && d[0].source == TEMPDISK_SOURCE_AZURE_LINK &&
                      strcmp(d[0].id, "azure-resource:vdb") == 0,
              "/dev/disk/azure/resource alone is an identity (%s)", n ? d[0].id : why);

        /* tempdisk=/dev/disk/by-id/... and --device name the disk; a missing one is an error. */
        ln("../../vdb", "%s/disk/by-id/virtio-resource", dev_dir);
        c.tempdisk = TEMPDISK_DEVICE;
        c.tempdisk_device = strdup("/dev/disk/by-id/virtio-resource");
        n = 9;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 1 && strcmp(d[0].name, "vdb") == 0 && d[0].source == TEMPDISK_SOURCE_CONFIG &&
                      strcmp(d[0].id, "device:/dev/disk/by-id/virtio-resource") == 0,
              "tempdisk= path resolved to vdb (%s)", n ? d[0].id : why);
        n = 9;
        r = detect(&c, "/dev/sdb", d, &n, why);
        CHECK(r == 0 && n == 1 && strcmp(d[0].name, "sdb") == 0 && d[0].source == TEMPDISK_SOURCE_OPTION,
              "--device wins over tempdisk=");
        free(c.tempdisk_device);
        c.tempdisk_device = strdup("/dev/disk/by-id/nothing");
        n = 9;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == -ENOENT && strstr(why, "/dev/disk/by-id/nothing does not exist"), "missing tempdisk= path: %s", why);
        put("", "%s/disk/by-id/not-a-node/x", dev_dir);
        n = 9;
        r = detect(&c, "/dev/disk/by-id/not-a-node/x", d, &n, why);
        CHECK(r == -ENOTBLK, "a file below /dev that is not a device node is refused: %s", why);
        config_done(&c);
}

static void test_nvme(void) {
        TempdiskDisk d[TEMPDISK_DISKS_MAX];
        char why[TEMPDISK_WHY_LEN] = "";
        Config c = cfg_default();
        size_t n = 9;
        int r;

        fresh_tree();
        nvme_disk(10, 1, "Microsoft NVMe Direct Disk              \n", "SN10\n", "259:10\n");
        nvme_disk(0, 1, "MSFT NVMe Accelerator v1.0              \n", "OS\n", "259:0\n");
        nvme_disk(1, 1, "Microsoft NVMe Direct Disk v2           \n", "SN1\n", "259:1\n");
        nvme_disk(2, 1, "Microsoft NVMe Direct Disk              \n", "SN 2\n", "259:2\n");
        nvme_disk(3, 1, "Microsoft NVMe Direct Disk v3           \n", "SN3\n", "259:3\n");
        c.tempdisk_disks = TEMPDISK_DISKS_EACH;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 3, "each: three Direct Disks (v1 and v2), not the remote OS disk or an unknown model (%zu)", n);
        CHECK(n == 3 && strcmp(d[0].name, "nvme1n1") == 0 && strcmp(d[1].name, "nvme2n1") == 0 &&
                      strcmp(d[2].name, "nvme10n1") == 0,
              "each: in controller order, nvme2 before nvme10");
        CHECK(n == 3 && strcmp(d[0].id, "nvme:SN1:ns1") == 0 && strcmp(d[1].id, "nvme:SN_2:ns1") == 0,
              "NVMe identity from serial and namespace, blanks replaced (%s)", n == 3 ? d[1].id : "");
        c.tempdisk_disks = TEMPDISK_DISKS_FIRST;
        n = 9;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 1 && strcmp(d[0].name, "nvme1n1") == 0, "first: only nvme1n1");

        /* With a SCSI resource disk too, it comes first. */
        scsi_disk("00000000-0001-8899-0000-000000000000", GEN1_RESOURCE "\n", "1:0:1:0", "sdb", "8:16\n", VENDOR, MODEL);
        c.tempdisk_disks = TEMPDISK_DISKS_EACH;
        n = 9;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 4 && strcmp(d[0].name, "sdb") == 0 && strcmp(d[1].name, "nvme1n1") == 0,
              "each: the SCSI resource disk first, then the NVMe disks (%zu)", n);
        config_done(&c);
}

static const char *guard_detail(const TempdiskCheck *c, TempdiskGuard g) {
        return c->guard[g].detail;
}

static void test_guards(void) {
        TempdiskDisk d[TEMPDISK_DISKS_MAX];
        char why[TEMPDISK_WHY_LEN] = "";
        Config c = cfg_default();
        TempdiskCheck chk;
        size_t n;
        int r;

        fresh_tree();
        scsi_disk("00000000-0000-8899-0000-000000000000", GEN1_ROOT "\n", "0:0:0:0", "sda", "8:0\n", VENDOR, MODEL);
        block_dev("LNXSYSTM:00/VMBUS:00/00000000-0000-8899-0000-000000000000/host0/target0:0:0/0:0:0:0/block/sda/sda2",
                  "sda2", "8:2\n", false);
        put("2\n", "%s/devices/LNXSYSTM:00/VMBUS:00/00000000-0000-8899-0000-000000000000/host0/target0:0:0/0:0:0:0/block/sda/sda2/partition",
            sys_dir);
        scsi_disk("00000000-0001-8899-0000-000000000000", GEN1_RESOURCE "\n", "1:0:1:0", "sdb", "8:16\n", VENDOR, MODEL);

        /* A clean resource disk: the sysfs guards pass. */
        n = 0;
        r = detect(&c, NULL, d, &n, why);
        CHECK(r == 0 && n == 1, "resource disk found");
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(chk.guard[TEMPDISK_GUARD_SYSTEM].ok && chk.guard[TEMPDISK_GUARD_HOLDERS].ok &&
                      chk.guard[TEMPDISK_GUARD_IN_USE].ok,
              "clean disk: system-disk, holders and in-use pass");
        CHECK(r == -ENOTBLK && !chk.guard[TEMPDISK_GUARD_WHOLE_DISK].ok &&
                      strstr(guard_detail(&chk, TEMPDISK_GUARD_WHOLE_DISK), "is not the block device 8:16"),
              "a plain file is not the block device sysfs names: %s", guard_detail(&chk, TEMPDISK_GUARD_WHOLE_DISK));

        /* Root on sda2 (through device-mapper dm-0): sda is a system disk, sdb is not. */
        block_dev("virtual/block/dm-0", "dm-0", "253:0\n", true);
        ln("../../../LNXSYSTM:00/VMBUS:00/00000000-0000-8899-0000-000000000000/host0/target0:0:0/0:0:0:0/block/sda/sda2",
           "%s/devices/virtual/block/dm-0/slaves/sda2", sys_dir);
        put("", "%s/devices/LNXSYSTM:00/VMBUS:00/00000000-0000-8899-0000-000000000000/host0/target0:0:0/0:0:0:0/block/sda/sda2/holders/dm-0",
            sys_dir);
        put("27 1 253:0 / / rw,relatime - ext4 /dev/mapper/root rw\n"
            "28 27 8:2 / /boot rw - ext4 /dev/sda2 rw\n",
            "%s/self/mountinfo", proc_dir);
        r = detect(&c, "/dev/sda", d, &n, why);
        CHECK(r == 0, "sda named");
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(r < 0 && !chk.guard[TEMPDISK_GUARD_SYSTEM].ok &&
                      strstr(guard_detail(&chk, TEMPDISK_GUARD_SYSTEM), "/sda holds the file system mounted at /"),
              "root through dm-0 on sda2: sda refused by system-disk: %s", guard_detail(&chk, TEMPDISK_GUARD_SYSTEM));
        CHECK(!chk.guard[TEMPDISK_GUARD_IN_USE].ok && strstr(guard_detail(&chk, TEMPDISK_GUARD_IN_USE), "sda2 is mounted at /boot"),
              "sda2 mounted at /boot: sda refused by in-use: %s", guard_detail(&chk, TEMPDISK_GUARD_IN_USE));
        CHECK(!chk.guard[TEMPDISK_GUARD_HOLDERS].ok && strstr(guard_detail(&chk, TEMPDISK_GUARD_HOLDERS), "sda2 is held by dm-0"),
              "sda2 held by dm-0: sda refused by holders: %s", guard_detail(&chk, TEMPDISK_GUARD_HOLDERS));
        r = detect(&c, "/dev/sdb", d, &n, why);
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(chk.guard[TEMPDISK_GUARD_SYSTEM].ok && chk.guard[TEMPDISK_GUARD_IN_USE].ok, "sdb is neither system nor in use");

        /* A partition and a dm device are not whole disks. */
        r = detect(&c, "/dev/sda2", d, &n, why);
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(!chk.guard[TEMPDISK_GUARD_WHOLE_DISK].ok &&
                      strstr(guard_detail(&chk, TEMPDISK_GUARD_WHOLE_DISK), "is partition 2 of a disk, not a whole disk"),
              "partition refused: %s", guard_detail(&chk, TEMPDISK_GUARD_WHOLE_DISK));
        r = detect(&c, "/dev/dm-0", d, &n, why);
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(!chk.guard[TEMPDISK_GUARD_WHOLE_DISK].ok &&
                      strstr(guard_detail(&chk, TEMPDISK_GUARD_WHOLE_DISK), "is stacked on sda2"),
              "dm device refused: %s", guard_detail(&chk, TEMPDISK_GUARD_WHOLE_DISK));

        /* Holders on the disk or on a partition. */
        put("", "%s/devices/LNXSYSTM:00/VMBUS:00/00000000-0001-8899-0000-000000000000/host1/target1:0:0/1:0:1:0/block/sdb/holders/dm-1",
            sys_dir);
        r = detect(&c, "/dev/sdb", d, &n, why);
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(r < 0 && !chk.guard[TEMPDISK_GUARD_HOLDERS].ok &&
                      strstr(guard_detail(&chk, TEMPDISK_GUARD_HOLDERS), "sdb is held by dm-1"),
              "holder on the disk refused: %s", guard_detail(&chk, TEMPDISK_GUARD_HOLDERS));
        {
                char p[700];

                snprintf(p, sizeof(p),
                         "%s/devices/LNXSYSTM:00/VMBUS:00/00000000-0001-8899-0000-000000000000/host1/target1:0:0/1:0:1:0/block/sdb/holders/dm-1",
                         sys_dir);
                unlink(p);
        }
        block_dev("LNXSYSTM:00/VMBUS:00/00000000-0001-8899-0000-000000000000/host1/target1:0:0/1:0:1:0/block/sdb/sdb1",
                  "sdb1", "8:17\n", false);
        put("1\n", "%s/devices/LNXSYSTM:00/VMBUS:00/00000000-0001-8899-0000-000000000000/host1/target1:0:0/1:0:1:0/block/sdb/sdb1/partition",
            sys_dir);
        put("", "%s/devices/LNXSYSTM:00/VMBUS:00/00000000-0001-8899-0000-000000000000/host1/target1:0:0/1:0:1:0/block/sdb/sdb1/holders/md127",
            sys_dir);
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(!chk.guard[TEMPDISK_GUARD_HOLDERS].ok && strstr(guard_detail(&chk, TEMPDISK_GUARD_HOLDERS), "sdb1 is held by md127"),
              "holder on a partition refused: %s", guard_detail(&chk, TEMPDISK_GUARD_HOLDERS));

        /* A mounted partition, with an escaped mount point. */
        put("27 1 253:0 / / rw - ext4 /dev/mapper/root rw\n"
            "40 27 8:17 / /mnt/my\\040data rw - ext4 /dev/sdb1 rw\n",
            "%s/self/mountinfo", proc_dir);
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(!chk.guard[TEMPDISK_GUARD_IN_USE].ok &&
                      strstr(guard_detail(&chk, TEMPDISK_GUARD_IN_USE), "sdb1 is mounted at /mnt/my data"),
              "mounted partition refused: %s", guard_detail(&chk, TEMPDISK_GUARD_IN_USE));

        /* Unreadable mount table: the guards that need it refuse. */
        put("garbage\n", "%s/self/mountinfo", proc_dir);
        r = tempdisk_check(&roots, &c, &d[0], &chk);
        CHECK(!chk.guard[TEMPDISK_GUARD_IN_USE].ok && !chk.guard[TEMPDISK_GUARD_SYSTEM].ok,
              "malformed mountinfo: in-use and system-disk refuse (%s)", guard_detail(&chk, TEMPDISK_GUARD_IN_USE));
        config_done(&c);
}

static void test_names_and_units(void) {
        char buf[600], path[512], text[2048];
        TempdiskDisk d = { .id = "vmbus:{x}:lun1" };
        TempdiskFormatted f = { .uuid = "0f2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b" };
        Config c = cfg_default();
        char mapping[64], mount[TEMPDISK_MOUNT_MAX], why[TEMPDISK_WHY_LEN];
        ssize_t k;
        FILE *fp;
        int r;

        CHECK(tempdisk_unit_name("/mnt/resource", ".mount", buf, sizeof(buf)) == 0 && strcmp(buf, "mnt-resource.mount") == 0,
              "unit name of /mnt/resource: %s", buf);
        CHECK(tempdisk_unit_name("/dev/mapper/cvmcrypt-tempdisk", ".device", buf, sizeof(buf)) == 0 &&
                      strcmp(buf, "dev-mapper-cvmcrypt\\x2dtempdisk.device") == 0,
              "unit name of the mapping: %s", buf);
        CHECK(tempdisk_unit_name("/", ".mount", buf, sizeof(buf)) == 0 && strcmp(buf, "-.mount") == 0, "unit name of /: %s", buf);
        CHECK(tempdisk_unit_name("/.hidden/a b//c/", ".mount", buf, sizeof(buf)) == 0 &&
                      strcmp(buf, "\\x2ehidden-a\\x20b-c.mount") == 0,
              "leading dot, blank and repeated slashes escaped as systemd does: %s", buf);
        CHECK(tempdisk_unit_name("relative", ".mount", buf, sizeof(buf)) == -EINVAL, "relative path refused");
        CHECK(tempdisk_unit_name("/mnt/resource", ".mount", buf, 10) == -ENAMETOOLONG, "small buffer refused");

        CHECK(tempdisk_target(&c, 0, mapping, sizeof(mapping), mount, sizeof(mount)) == 0 &&
                      strcmp(mapping, "cvmcrypt-tempdisk") == 0 && strcmp(mount, "/mnt/resource") == 0,
              "first disk: cvmcrypt-tempdisk at /mnt/resource");
        CHECK(tempdisk_target(&c, 2, mapping, sizeof(mapping), mount, sizeof(mount)) == 0 &&
                      strcmp(mapping, "cvmcrypt-tempdisk-2") == 0 && strcmp(mount, "/mnt/resource-2") == 0,
              "third disk: cvmcrypt-tempdisk-2 at /mnt/resource-2");
        CHECK(tempdisk_identity(&d, &f, buf, sizeof(buf)) == 0 &&
                      strcmp(buf, "cvmcrypt:tempdisk:vmbus:{x}:lun1:0f2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b") == 0,
              "identity: %s", buf);
        f.uuid[0] = '\0';
        CHECK(tempdisk_identity(&d, &f, buf, sizeof(buf)) == 0 && strcmp(buf, "cvmcrypt:tempdisk:vmbus:{x}:lun1:plain") == 0,
              "identity of plain dm-crypt: %s", buf);

        fresh_tree();
        snprintf(path, sizeof(path), "%s/units", top);
        r = tempdisk_write_units(path, TEMPDISK_FS_EXT4, "/dev/mapper/cvmcrypt-tempdisk", "/mnt/resource",
                                 "/mnt/resource/swapfile", why, sizeof(why));
        CHECK(r == 0, "units written (%s)", why);
        snprintf(buf, sizeof(buf), "%s/units/mnt-resource.mount", top);
        fp = fopen(buf, "r");
        k = fp ? (ssize_t) fread(text, 1, sizeof(text) - 1, fp) : -1;
        if (fp)
                fclose(fp);
        text[k > 0 ? k : 0] = '\0';
        CHECK(strstr(text, "What=/dev/mapper/cvmcrypt-tempdisk\nWhere=/mnt/resource\nType=ext4\nOptions=nofail,nosuid,nodev\n") &&
                      strstr(text, "Requires=dev-mapper-cvmcrypt\\x2dtempdisk.device\n"),
              "mount unit content");
        snprintf(buf, sizeof(buf), "%s/units/local-fs.target.wants/mnt-resource.mount", top);
        k = readlink(buf, text, sizeof(text) - 1);
        text[k > 0 ? k : 0] = '\0';
        CHECK(strcmp(text, "../mnt-resource.mount") == 0, "mount unit wanted by local-fs.target");
        snprintf(buf, sizeof(buf), "%s/units/swap.target.wants/mnt-resource-swapfile.swap", top);
        CHECK(access(buf, F_OK) == 0, "swap unit wanted by swap.target");
        r = tempdisk_write_units(path, TEMPDISK_FS_XFS, "/dev/mapper/x", "/mnt/100%", NULL, why, sizeof(why));
        CHECK(r == -EINVAL && strstr(why, "'%'"), "a '%%' in a path is refused: %s", why);
        config_done(&c);
}

static void test_swapfile(void) {
        char path[512], why[TEMPDISK_WHY_LEN] = "";
        long page = sysconf(_SC_PAGESIZE);
        unsigned char *buf = calloc(1, (size_t) page);
        uint32_t version, last;
        struct stat st;
        int fd, r;

        fresh_tree();
        snprintf(path, sizeof(path), "%s/swapfile", top);
        r = tempdisk_make_swapfile(path, 1u << 20, why, sizeof(why));
        CHECK(r == 0, "1 MiB swap file made (%s)", why);
        CHECK(stat(path, &st) == 0 && st.st_size == 1 << 20 && (st.st_mode & 0777) == 0600, "size 1 MiB, mode 0600");
        fd = open(path, O_RDONLY);
        CHECK(fd >= 0 && read(fd, buf, (size_t) page) == page, "header page readable");
        if (fd >= 0)
                close(fd);
        memcpy(&version, buf + 1024, 4);
        memcpy(&last, buf + 1028, 4);
        CHECK(memcmp(buf + page - 10, "SWAPSPACE2", 10) == 0 && version == 1 && last == (1u << 20) / page - 1,
              "swap header: magic, version 1, last page %u", last);
        r = tempdisk_make_swapfile(path, 1u << 20, why, sizeof(why));
        CHECK(r == -EEXIST, "never over an existing file: %s", why);
        r = tempdisk_make_swapfile(path, 4096 * 3, why, sizeof(why));
        CHECK(r == -EINVAL, "too small: %s", why);
        free(buf);
}

/* libblkid on image files: zeros are blank; the swap file we make is a swap area to libblkid, so
 * refused content. */
static void test_probe_content(void) {
        char path[512], detail[320] = "", why[TEMPDISK_WHY_LEN] = "";
        TempdiskContent content;
        int fd, r;

        fresh_tree();
        snprintf(path, sizeof(path), "%s/disk.img", top);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        CHECK(fd >= 0 && ftruncate(fd, 8 << 20) == 0, "8 MiB image");
        r = tempdisk_probe_content(fd, 8 << 20, &content, detail, sizeof(detail));
        CHECK(r == 0 && content == TEMPDISK_CONTENT_BLANK, "zeros are blank: %s", detail);
        close(fd);
        snprintf(path, sizeof(path), "%s/swap.img", top);
        r = tempdisk_make_swapfile(path, 8 << 20, why, sizeof(why));
        fd = open(path, O_RDONLY);
        CHECK(r == 0 && fd >= 0, "swap file made (%s)", why);
        r = tempdisk_probe_content(fd, 8 << 20, &content, detail, sizeof(detail));
        CHECK(r == 0 && content == TEMPDISK_CONTENT_OTHER && strcmp(detail, "a signature of type swap (label 'cvmcrypt-swap')") == 0,
              "our swap header is a swap area to libblkid, refused: %s", detail);
        close(fd);
}

/* The ext4 superblock's compat, incompat and ro_compat feature words (at 1024 + 0x5c, 0x60 and
 * 0x64). */
static bool ext4_features(int fd, uint32_t *compat, uint32_t *incompat, uint32_t *ro_compat) {
        uint32_t w[3];

        if (pread(fd, w, sizeof(w), 1024 + 0x5c) != (ssize_t) sizeof(w))
                return false;
        *compat = le32toh(w[0]);
        *incompat = le32toh(w[1]);
        *ro_compat = le32toh(w[2]);
        return true;
}

/* mkfs.ext4 and mkfs.xfs accept the argv tempdisk_mkfs gives them (on image files here; on the
 * mapping in the qemu tier), and a tool that fails is reported. */
static void test_mkfs(void) {
        static const struct {
                TempdiskFs fs;
                const char *type;
                int size_mib; /* mkfs.xfs wants at least 300 MiB */
        } cases[] = { { TEMPDISK_FS_EXT4, "ext4", 64 }, { TEMPDISK_FS_XFS, "xfs", 512 } };
        char path[512], detail[320], why[TEMPDISK_WHY_LEN], expect[64];
        TempdiskContent content;
        uint32_t compat = 0, incompat = 0, ro_compat = 0;
        int fd, r;

        fresh_tree();
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(path, sizeof(path), "%s/%s.img", top, cases[i].type);
                fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
                CHECK(fd >= 0 && ftruncate(fd, (off_t) cases[i].size_mib << 20) == 0, "%s image", cases[i].type);
                r = tempdisk_mkfs(cases[i].fs, path, (uint64_t) cases[i].size_mib << 20, why, sizeof(why));
                CHECK(r == 0, "mkfs.%s accepts our arguments (%s)", cases[i].type, why);
                snprintf(expect, sizeof(expect), "a signature of type %s (label 'tempdisk')", cases[i].type);
                r = tempdisk_probe_content(fd, (uint64_t) cases[i].size_mib << 20, &content, detail, sizeof(detail));
                CHECK(r == 0 && strcmp(detail, expect) == 0, "%s labelled tempdisk: %s", cases[i].type, detail);
                close(fd);
        }
        /* ext4: a journal (compat 0x4), flex_bg (incompat 0x200), clusters (ro_compat bigalloc 0x200)
         * and metadata checksums (ro_compat 0x400), and 64-bit block numbers (incompat 0x80) only
         * when the size does not rule them out. */
        snprintf(path, sizeof(path), "%s/ext4.img", top);
        fd = open(path, O_RDONLY);
        CHECK(fd >= 0 && ext4_features(fd, &compat, &incompat, &ro_compat) && (compat & 0x4) && (incompat & 0x200) &&
                      (ro_compat & 0x600) == 0x600 && !(incompat & 0x80),
              "ext4 of a known size below 16 TiB: journal, flex_bg, bigalloc, metadata_csum, 32-bit (compat %#x, incompat %#x, ro_compat %#x)",
              compat, incompat, ro_compat);
        close(fd);
        r = tempdisk_mkfs(TEMPDISK_FS_EXT4, path, 0, why, sizeof(why));
        fd = open(path, O_RDONLY);
        CHECK(r == 0 && fd >= 0 && ext4_features(fd, &compat, &incompat, &ro_compat) && (compat & 0x4) && (incompat & 0x80),
              "ext4 of an unknown size: journal, 64-bit (compat %#x, incompat %#x)", compat, incompat);
        close(fd);
        snprintf(path, sizeof(path), "%s/too-small.img", top);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        close(fd);
        r = tempdisk_mkfs(TEMPDISK_FS_EXT4, path, 0, why, sizeof(why));
        CHECK(r == -EIO && strstr(why, "mkfs.ext4 failed (exit status"), "a failing mkfs is reported: %s", why);
}

int main(void) {
        char cmd[512];

        test_gen1();
        test_gen2();
        test_link_only_and_negatives();
        test_nvme();
        test_guards();
        test_names_and_units();
        test_swapfile();
        test_probe_content();
        test_mkfs();
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
        (void) !system(cmd);
        return tap_done();
}
