/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Temp disk detection and guards. Nothing in this file writes to a disk. */
#include <blkid.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "tempdisk.h"

/* The first SCSI controller of a Gen2 VM (OS disk LUN 0, resource disk LUN 1). */
#define VMBUS_SCSI_GEN2 "{f8b3781a-1e82-4818-a1c3-63d806ec15bb}"
#define SYSFS_VALUE_MAX 256
#define SYSFS_DEPTH_MAX 32
#define STACK_DEPTH_MAX 8
#define SYSTEM_DISKS_MAX 64
#define PARTITIONS_MAX 128
#define NTFS_LABEL "Temporary Storage"
#define GPT_BASIC_DATA "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* A small sysfs attribute, trailing whitespace removed (SCSI pads vendor and model with spaces). */
static int read_value(const char *path, char *buf, size_t n) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        ssize_t k;

        if (fd < 0)
                return negative_errno();
        k = read(fd, buf, n);
        if (k < 0)
                return negative_errno();
        if ((size_t) k >= n)
                return -EFBIG;
        while (k > 0 && isspace((unsigned char) buf[k - 1]))
                k--;
        buf[k] = '\0';
        return 0;
}

static _printf_(3, 4) int read_valuef(char *buf, size_t n, const char *fmt, ...) {
        char path[TEMPDISK_PATH_MAX];
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vsnprintf(path, sizeof(path), fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t) k >= sizeof(path))
                return -ENAMETOOLONG;
        return read_value(path, buf, n);
}

/* "MAJOR:MINOR" as the kernel prints it. */
static int parse_devnum(const char *s, dev_t *ret) {
        unsigned long v[2] = {};

        for (int i = 0; i < 2; i++) {
                const char *start = s;

                for (; *s >= '0' && *s <= '9' && s - start < 8; s++)
                        v[i] = v[i] * 10 + (unsigned long) (*s - '0');
                if (s == start || *s != (i == 0 ? ':' : '\0'))
                        return -EINVAL;
                s++;
        }
        *ret = makedev(v[0], v[1]);
        return 0;
}

static int sysfs_devnum(const char *dir, dev_t *ret) {
        char value[32];
        int r;

        r = read_valuef(value, sizeof(value), "%s/dev", dir);
        return r < 0 ? r : parse_devnum(value, ret);
}

static bool exists(const char *path) {
        return access(path, F_OK) == 0;
}

/* Kernel block device names: letters, digits, '-', '_', '.' and ':' only, never "." or "..". */
static bool is_block_name(const char *s) {
        size_t len = strlen(s);

        if (len == 0 || len >= TEMPDISK_NAME_MAX || s[0] == '.')
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("-_.:", *s))
                        return false;
        return true;
}

/* Host-controlled text for an identity string: printable ASCII without spaces or ':'. */
static void sanitize(char *s) {
        for (; *s; s++)
                if (!isgraph((unsigned char) *s) || *s == ':')
                        *s = '_';
}

const char *tempdisk_source_to_string(TempdiskSource s) {
        switch (s) {
        case TEMPDISK_SOURCE_OPTION:
                return "--device";
        case TEMPDISK_SOURCE_CONFIG:
                return "tempdisk=";
        case TEMPDISK_SOURCE_AZURE_LINK:
                return "/dev/disk/azure/resource";
        case TEMPDISK_SOURCE_VMBUS:
                return "VMBus resource disk";
        case TEMPDISK_SOURCE_NVME:
                return "NVMe Direct Disk";
        }
        return "?";
}

static int disk_init(const TempdiskRoots *roots, const char *name, TempdiskSource source, const char *id,
                     TempdiskDisk *d) {
        char dir[TEMPDISK_PATH_MAX];
        int r;

        if (!is_block_name(name))
                return -EINVAL;
        *d = (TempdiskDisk){ .source = source };
        snprintf(d->name, sizeof(d->name), "%s", name);
        r = path_printf(dir, sizeof(dir), "%s/class/block/%s", roots->sys, name);
        if (r >= 0)
                r = sysfs_devnum(dir, &d->devnum);
        if (r >= 0)
                r = path_printf(d->path, sizeof(d->path), "%s/%s", roots->dev, name);
        if (r >= 0)
                r = path_printf(d->id, sizeof(d->id), "%s", id);
        return r;
}

/* Walks up from /sys/block/NAME's real directory to the first ancestor with a device_id file: the
 * VMBus device of the SCSI controller, as udev's ATTRS{device_id} does. */
static int vmbus_device_id(const TempdiskRoots *roots, const char *name, char *buf, size_t n) {
        char path[TEMPDISK_PATH_MAX], sys[PATH_MAX], dir[PATH_MAX], file[PATH_MAX + 16];
        size_t sys_len;
        int r;

        r = path_printf(path, sizeof(path), "%s/block/%s", roots->sys, name);
        if (r < 0)
                return r;
        if (!realpath(roots->sys, sys) || !realpath(path, dir))
                return negative_errno();
        sys_len = strlen(sys);
        for (int depth = 0; depth < SYSFS_DEPTH_MAX; depth++) {
                char *slash = strrchr(dir, '/');

                if (!slash || (size_t) (slash - dir) <= sys_len)
                        return -ENOENT;
                *slash = '\0';
                (void) snprintf(file, sizeof(file), "%s/device_id", dir);
                r = read_value(file, buf, n);
                if (r != -ENOENT)
                        return r;
        }
        return -ENOENT;
}

/* The SCSI address H:C:T:L is the name of the directory /sys/block/NAME/device points to. */
static int scsi_lun(const TempdiskRoots *roots, const char *name, unsigned *ret) {
        char path[TEMPDISK_PATH_MAX], target[PATH_MAX];
        unsigned h, c, t, l;
        const char *base;
        ssize_t k;
        int end = 0, r;

        r = path_printf(path, sizeof(path), "%s/block/%s/device", roots->sys, name);
        if (r < 0)
                return r;
        k = readlink(path, target, sizeof(target) - 1);
        if (k < 0)
                return negative_errno();
        target[k] = '\0';
        base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
        if (sscanf(base, "%u:%u:%u:%u%n", &h, &c, &t, &l, &end) != 4 || base[end] != '\0')
                return -EINVAL;
        *ret = l;
        return 0;
}

/* The identity Azure's udev rules give the resource disk: a Hyper-V SCSI disk (vendor Msft, model
 * Virtual Disk) whose controller's VMBus device_id has 0001 as its second group (Gen1), or LUN 1 on
 * the first Gen2 controller. Returns 1 and the id when it is, 0 when not. */
static int scsi_resource_id(const TempdiskRoots *roots, const char *name, char *id, size_t n) {
        char vendor[SYSFS_VALUE_MAX], model[SYSFS_VALUE_MAX], device_id[SYSFS_VALUE_MAX];
        unsigned lun;

        if (read_valuef(vendor, sizeof(vendor), "%s/block/%s/device/vendor", roots->sys, name) < 0 ||
            read_valuef(model, sizeof(model), "%s/block/%s/device/model", roots->sys, name) < 0 ||
            strcmp(vendor, "Msft") != 0 || strcmp(model, "Virtual Disk") != 0)
                return 0;
        if (vmbus_device_id(roots, name, device_id, sizeof(device_id)) < 0 || scsi_lun(roots, name, &lun) < 0)
                return 0;
        if (!(strlen(device_id) == 38 && strncmp(device_id + 1, "00000000-0001-", 14) == 0) &&
            !(strcmp(device_id, VMBUS_SCSI_GEN2) == 0 && lun == 1))
                return 0;
        sanitize(device_id);
        return path_printf(id, n, "vmbus:%s:lun%u", device_id, lun) < 0 ? -ENAMETOOLONG : 1;
}

/* nvmeXnY (not the per-path nvmeXcYnZ). */
static bool nvme_name(const char *name, unsigned *ctrl, unsigned *ns) {
        int end = 0;

        return sscanf(name, "nvme%un%u%n", ctrl, ns, &end) == 2 && name[end] == '\0';
}

/* A namespace of a "Microsoft NVMe Direct Disk" or "... v2" controller: Azure's local NVMe disks. */
static int nvme_local_id(const TempdiskRoots *roots, const char *name, char *id, size_t n) {
        char model[SYSFS_VALUE_MAX], serial[SYSFS_VALUE_MAX], nsid[32];
        unsigned ctrl, ns;

        if (!nvme_name(name, &ctrl, &ns) ||
            read_valuef(model, sizeof(model), "%s/block/%s/device/model", roots->sys, name) < 0 ||
            (strcmp(model, "Microsoft NVMe Direct Disk") != 0 && strcmp(model, "Microsoft NVMe Direct Disk v2") != 0) ||
            read_valuef(nsid, sizeof(nsid), "%s/block/%s/nsid", roots->sys, name) < 0)
                return 0;
        if (read_valuef(serial, sizeof(serial), "%s/block/%s/device/serial", roots->sys, name) < 0 ||
            !*serial)
                snprintf(serial, sizeof(serial), "%s", name);
        sanitize(serial);
        sanitize(nsid);
        return path_printf(id, n, "nvme:%s:ns%s", serial, nsid) < 0 ? -ENAMETOOLONG : 1;
}

/* A path under /dev (mapped into roots->dev) resolved to the kernel name of the node it ends at. */
static int resolve_dev_path(const TempdiskRoots *roots, const char *path, char *name, size_t n) {
        char mapped[TEMPDISK_PATH_MAX], real[PATH_MAX], dev[PATH_MAX];
        size_t dev_len;
        int r;

        if (strncmp(path, "/dev/", 5) == 0)
                r = path_printf(mapped, sizeof(mapped), "%s/%s", roots->dev, path + 5);
        else
                r = path_printf(mapped, sizeof(mapped), "%s", path);
        if (r < 0)
                return r;
        if (!realpath(mapped, real) || !realpath(roots->dev, dev))
                return negative_errno();
        dev_len = strlen(dev);
        /* Device nodes sit directly in /dev; anything else is not a kernel block device name. */
        if (strncmp(real, dev, dev_len) != 0 || real[dev_len] != '/' || strchr(real + dev_len + 1, '/'))
                return -ENOTBLK;
        if (!is_block_name(real + dev_len + 1))
                return -ENOTBLK;
        return path_printf(name, n, "%s", real + dev_len + 1);
}

static int detect_path(const TempdiskRoots *roots, const char *path, TempdiskSource source, TempdiskDisk *d,
                       char *why, size_t n) {
        char name[TEMPDISK_NAME_MAX], id[TEMPDISK_ID_MAX], esc[TEMPDISK_PATH_MAX];
        int r;

        r = resolve_dev_path(roots, path, name, sizeof(name));
        if (r == -ENOENT)
                return format_reason(why, n, r, "%s does not exist", log_escape(esc, sizeof(esc), path));
        if (r < 0)
                return format_reason(why, n, r == -ENOTBLK ? r : -ENODEV, "%s: not a block device: %s",
                                     log_escape(esc, sizeof(esc), path), strerror(-r));
        (void) snprintf(id, sizeof(id), "device:%s", path);
        sanitize(id + 7);
        r = disk_init(roots, name, source, id, d);
        if (r < 0)
                return format_reason(why, n, -ENODEV, "%s (%s) is not a block device known to sysfs",
                                     log_escape(esc, sizeof(esc), path), name);
        return 0;
}

typedef struct Found {
        TempdiskDisk scsi[TEMPDISK_DISKS_MAX];
        size_t n_scsi;
        TempdiskDisk nvme[TEMPDISK_DISKS_MAX];
        unsigned nvme_key[TEMPDISK_DISKS_MAX][2];
        size_t n_nvme;
} Found;

static int add_scsi(Found *f, const TempdiskDisk *d) {
        for (size_t i = 0; i < f->n_scsi; i++)
                if (strcmp(f->scsi[i].name, d->name) == 0) {
                        /* The link and the scan agree; keep the scan's VMBus identity. */
                        if (d->source == TEMPDISK_SOURCE_VMBUS)
                                f->scsi[i] = *d;
                        return 0;
                }
        if (f->n_scsi >= TEMPDISK_DISKS_MAX)
                return -E2BIG;
        f->scsi[f->n_scsi++] = *d;
        return 0;
}

static void add_nvme(Found *f, const TempdiskDisk *d) {
        unsigned ctrl = 0, ns = 0;
        size_t i;

        if (f->n_nvme >= TEMPDISK_DISKS_MAX)
                return;
        (void) nvme_name(d->name, &ctrl, &ns);
        /* Insertion sort by controller and namespace number: nvme2n1 before nvme10n1. */
        for (i = f->n_nvme; i > 0 && (f->nvme_key[i - 1][0] > ctrl || (f->nvme_key[i - 1][0] == ctrl && f->nvme_key[i - 1][1] > ns));
             i--) {
                f->nvme[i] = f->nvme[i - 1];
                f->nvme_key[i][0] = f->nvme_key[i - 1][0];
                f->nvme_key[i][1] = f->nvme_key[i - 1][1];
        }
        f->nvme[i] = *d;
        f->nvme_key[i][0] = ctrl;
        f->nvme_key[i][1] = ns;
        f->n_nvme++;
}

static int scan_identity(const TempdiskRoots *roots, Found *f, char *why, size_t n) {
        _cleanup_(closedirp) DIR *dir = NULL;
        char path[TEMPDISK_PATH_MAX], name[TEMPDISK_NAME_MAX];
        struct dirent *de;
        TempdiskDisk d;
        int r;

        r = path_printf(path, sizeof(path), "%s/disk/azure/resource", roots->dev);
        if (r >= 0 && resolve_dev_path(roots, path, name, sizeof(name)) >= 0 &&
            disk_init(roots, name, TEMPDISK_SOURCE_AZURE_LINK, "azure-resource", &d) >= 0) {
                (void) snprintf(d.id, sizeof(d.id), "azure-resource:%s", name);
                if (add_scsi(f, &d) < 0)
                        return format_reason(why, n, -E2BIG, "too many disks");
        }
        r = path_printf(path, sizeof(path), "%s/block", roots->sys);
        if (r < 0)
                return format_reason(why, n, r, "sysfs path too long");
        dir = opendir(path);
        if (!dir)
                return format_reason(why, n, negative_errno(), "cannot list %s: %s", path, strerror(errno));
        while ((de = readdir(dir))) {
                char id[TEMPDISK_ID_MAX];

                if (!is_block_name(de->d_name))
                        continue;
                if (scsi_resource_id(roots, de->d_name, id, sizeof(id)) > 0 &&
                    disk_init(roots, de->d_name, TEMPDISK_SOURCE_VMBUS, id, &d) >= 0) {
                        if (add_scsi(f, &d) < 0)
                                return format_reason(why, n, -E2BIG, "too many disks");
                } else if (nvme_local_id(roots, de->d_name, id, sizeof(id)) > 0 &&
                           disk_init(roots, de->d_name, TEMPDISK_SOURCE_NVME, id, &d) >= 0)
                        add_nvme(f, &d);
        }
        if (f->n_scsi > 1)
                return format_reason(why, n, -EUCLEAN,
                                     "two disks claim to be the resource disk (%s by %s, %s by %s); refusing to guess",
                                     f->scsi[0].name, tempdisk_source_to_string(f->scsi[0].source), f->scsi[1].name,
                                     tempdisk_source_to_string(f->scsi[1].source));
        return 0;
}

int tempdisk_detect(const TempdiskRoots *roots, const Config *cfg, const char *device, TempdiskDisk *disks,
                    size_t max, size_t *ret_n, char *why, size_t n) {
        _cleanup_free_ Found *f = NULL;
        size_t k = 0;
        int r;

        if (max == 0)
                return -EINVAL;
        if (device || cfg->tempdisk == TEMPDISK_DEVICE) {
                r = detect_path(roots, device ? device : cfg->tempdisk_device,
                                device ? TEMPDISK_SOURCE_OPTION : TEMPDISK_SOURCE_CONFIG, &disks[0], why, n);
                if (r < 0)
                        return r;
                *ret_n = 1;
                return 0;
        }
        f = calloc(1, sizeof(*f));
        if (!f)
                return format_reason(why, n, -ENOMEM, "out of memory");
        r = scan_identity(roots, f, why, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < f->n_scsi && k < max; i++)
                disks[k++] = f->scsi[i];
        for (size_t i = 0; i < f->n_nvme && k < max; i++)
                disks[k++] = f->nvme[i];
        *ret_n = cfg->tempdisk_disks == TEMPDISK_DISKS_FIRST && k > 1 ? 1 : k;
        return 0;
}

/* ---- guards ---- */

const char *tempdisk_guard_name(TempdiskGuard g) {
        static const char *const names[_TEMPDISK_GUARD_MAX] = {
                [TEMPDISK_GUARD_WHOLE_DISK] = "whole-disk", [TEMPDISK_GUARD_SYSTEM] = "system-disk",
                [TEMPDISK_GUARD_HOLDERS] = "holders",       [TEMPDISK_GUARD_IN_USE] = "in-use",
                [TEMPDISK_GUARD_EXCLUSIVE] = "exclusive",   [TEMPDISK_GUARD_CONTENT] = "content",
        };

        return g < _TEMPDISK_GUARD_MAX ? names[g] : "?";
}

const char *tempdisk_content_to_string(TempdiskContent c) {
        switch (c) {
        case TEMPDISK_CONTENT_UNKNOWN:
                return "unknown";
        case TEMPDISK_CONTENT_BLANK:
                return "blank";
        case TEMPDISK_CONTENT_AZURE_NTFS:
                return "azure-ntfs";
        case TEMPDISK_CONTENT_OURS:
                return "cvmcrypt-luks2";
        case TEMPDISK_CONTENT_OTHER:
                return "other";
        }
        return "?";
}

static _printf_(4, 5) void verdict(TempdiskCheck *c, TempdiskGuard g, int error, const char *fmt, ...) {
        va_list ap;

        c->guard[g].ok = error == 0;
        c->guard[g].error = error;
        va_start(ap, fmt);
        (void) vsnprintf(c->guard[g].detail, sizeof(c->guard[g].detail), fmt, ap);
        va_end(ap);
}

typedef struct DevSet {
        dev_t dev[SYSTEM_DISKS_MAX];
        char role[SYSTEM_DISKS_MAX][96];
        size_t n;
        bool overflow;
} DevSet;

static void devset_add(DevSet *s, dev_t dev, const char *role) {
        for (size_t i = 0; i < s->n; i++)
                if (s->dev[i] == dev)
                        return;
        if (s->n >= SYSTEM_DISKS_MAX) {
                s->overflow = true;
                return;
        }
        s->dev[s->n] = dev;
        (void) snprintf(s->role[s->n++], sizeof(s->role[0]), "%s", role);
}

static const char *devset_find(const DevSet *s, dev_t dev) {
        for (size_t i = 0; i < s->n; i++)
                if (s->dev[i] == dev)
                        return s->role[i];
        return NULL;
}

/* The whole disks under a block device: a partition's disk, every disk a dm or md device is
 * stacked on (slaves), recursively. */
static int add_whole_disks(const TempdiskRoots *roots, dev_t dev, const char *role, DevSet *set, unsigned depth) {
        _cleanup_(closedirp) DIR *slaves = NULL;
        char dir[TEMPDISK_PATH_MAX], real[PATH_MAX], path[TEMPDISK_PATH_MAX];
        struct dirent *de;
        bool stacked = false;
        dev_t parent;
        int r;

        if (depth > STACK_DEPTH_MAX)
                return -ELOOP;
        r = path_printf(dir, sizeof(dir), "%s/dev/block/%u:%u", roots->sys, major(dev), minor(dev));
        if (r < 0)
                return r;
        if (!realpath(dir, real))
                return errno == ENOENT ? 0 : negative_errno(); /* not a block device */
        r = path_printf(path, sizeof(path), "%s/partition", real);
        if (r < 0)
                return r;
        if (exists(path)) {
                char *slash = strrchr(real, '/');

                if (!slash)
                        return -EINVAL;
                *slash = '\0';
                r = sysfs_devnum(real, &parent);
                return r < 0 ? r : add_whole_disks(roots, parent, role, set, depth + 1);
        }
        r = path_printf(path, sizeof(path), "%s/slaves", real);
        if (r < 0)
                return r;
        slaves = opendir(path);
        while (slaves && (de = readdir(slaves))) {
                char slave[TEMPDISK_PATH_MAX];
                dev_t sdev;

                if (!is_block_name(de->d_name))
                        continue;
                r = path_printf(slave, sizeof(slave), "%s/class/block/%s", roots->sys, de->d_name);
                if (r >= 0)
                        r = sysfs_devnum(slave, &sdev);
                if (r >= 0)
                        r = add_whole_disks(roots, sdev, role, set, depth + 1);
                if (r < 0)
                        return r;
                stacked = true;
        }
        if (!stacked)
                devset_add(set, dev, role);
        return 0;
}

/* /proc/self/mountinfo and /proc/swaps escape space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s) {
        char *w = s;

        for (; *s; s++) {
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
                        *w++ = (char) ((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
                        s += 3;
                } else
                        *w++ = *s;
        }
        *w = '\0';
}

typedef int (*MountFn)(void *userdata, dev_t dev, const char *where, const char *source);

/* Calls fn for each mount with its device: the mountinfo major:minor, or for file systems with an
 * anonymous device (btrfs) the source, if it is a block device node. Unreadable mountinfo is an
 * error: a guard that cannot look refuses. */
static int foreach_mount(const TempdiskRoots *roots, MountFn fn, void *userdata) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        char path[TEMPDISK_PATH_MAX];
        size_t size = 0;
        int r;

        r = path_printf(path, sizeof(path), "%s/self/mountinfo", roots->proc);
        if (r < 0)
                return r;
        f = fopen(path, "re");
        if (!f)
                return negative_errno();
        while (getline(&line, &size, f) > 0) {
                char *field[10] = {}, *save = NULL, *sep, *tok;
                size_t nf = 0;
                struct stat st;
                dev_t dev;

                /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS */
                sep = strstr(line, " - ");
                if (!sep)
                        return -EBADMSG;
                *sep = '\0';
                for (tok = strtok_r(line, " \n", &save); tok && nf < 5; tok = strtok_r(NULL, " \n", &save))
                        field[nf++] = tok;
                tok = strtok_r(sep + 3, " \n", &save);
                field[5] = tok ? strtok_r(NULL, " \n", &save) : NULL;
                if (nf < 5 || !field[5] || parse_devnum(field[2], &dev) < 0)
                        return -EBADMSG;
                unescape_octal(field[4]);
                unescape_octal(field[5]);
                if (major(dev) == 0 && field[5][0] == '/' && stat(field[5], &st) == 0 && S_ISBLK(st.st_mode))
                        dev = st.st_rdev;
                r = fn(userdata, dev, field[4], field[5]);
                if (r != 0)
                        return r;
        }
        return ferror(f) ? -EIO : 0;
}

typedef struct SystemCollect {
        const TempdiskRoots *roots;
        DevSet *set;
        int error;
} SystemCollect;

static int collect_system_mount(void *userdata, dev_t dev, const char *where, const char *source _unused_) {
        /* In the initrd the real root and its /boot sit under /sysroot. */
        static const char *const system_paths[] = { "/", "/boot", "/boot/efi", "/efi", "/usr",
                                                    "/sysroot", "/sysroot/boot", "/sysroot/boot/efi",
                                                    "/sysroot/efi", "/sysroot/usr" };
        SystemCollect *c = userdata;
        char role[96];

        if (major(dev) == 0)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(system_paths); i++)
                if (strcmp(where, system_paths[i]) == 0) {
                        (void) snprintf(role, sizeof(role), "the file system mounted at %s", where);
                        c->error = add_whole_disks(c->roots, dev, role, c->set, 0);
                        return c->error < 0 ? 1 : 0;
                }
        return 0;
}

static int add_volume_disks(const TempdiskRoots *roots, const Config *cfg, DevSet *set) {
        for (size_t i = 0; i < cfg->n_volumes; i++) {
                const char *spec = cfg->volumes[i].device;
                _cleanup_free_ char *path = NULL;
                char role[96], esc[64];
                struct stat st;
                int r;

                /* libblkid resolves UUID= through /dev/disk/by-uuid or by probing. */
                path = strncmp(spec, "UUID=", 5) == 0 ? blkid_evaluate_tag("UUID", spec + 5, NULL) : strdup(spec);
                if (!path || stat(path, &st) < 0 || !S_ISBLK(st.st_mode))
                        continue; /* a volume that is not there holds nothing */
                (void) snprintf(role, sizeof(role), "the configured volume %s", log_escape(esc, sizeof(esc), spec));
                r = add_whole_disks(roots, st.st_rdev, role, set, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void guard_system(const TempdiskRoots *roots, const Config *cfg, const TempdiskDisk *d, TempdiskCheck *c) {
        _cleanup_free_ DevSet *set = calloc(1, sizeof(DevSet));
        SystemCollect col = { .roots = roots };
        const char *role;
        int r;

        if (!set) {
                verdict(c, TEMPDISK_GUARD_SYSTEM, -ENOMEM, "out of memory");
                return;
        }
        col.set = set;
        r = foreach_mount(roots, collect_system_mount, &col);
        if (r >= 0)
                r = col.error;
        if (r >= 0)
                r = add_volume_disks(roots, cfg, set);
        if (r < 0 || set->overflow) {
                verdict(c, TEMPDISK_GUARD_SYSTEM, -EBUSY, "cannot tell which disks hold the system: %s",
                        strerror(r < 0 ? -r : E2BIG));
                return;
        }
        role = devset_find(set, d->devnum);
        if (role)
                verdict(c, TEMPDISK_GUARD_SYSTEM, -EBUSY, "%s holds %s", d->path, role);
        else
                verdict(c, TEMPDISK_GUARD_SYSTEM, 0, "holds no root, /boot, ESP or configured volume");
}

typedef struct Part {
        char name[TEMPDISK_NAME_MAX];
        dev_t dev;
} Part;

/* The disk itself, then its partitions (subdirectories with a partition file). */
static int disk_and_partitions(const TempdiskRoots *roots, const TempdiskDisk *d, Part *parts, size_t max, size_t *ret_n) {
        _cleanup_(closedirp) DIR *dir = NULL;
        char path[TEMPDISK_PATH_MAX];
        struct dirent *de;
        size_t k = 0;
        int r;

        parts[k++] = (Part){ .dev = d->devnum };
        snprintf(parts[0].name, sizeof(parts[0].name), "%s", d->name);
        r = path_printf(path, sizeof(path), "%s/class/block/%s", roots->sys, d->name);
        if (r < 0)
                return r;
        dir = opendir(path);
        if (!dir)
                return negative_errno();
        while ((de = readdir(dir))) {
                char sub[TEMPDISK_PATH_MAX], file[TEMPDISK_PATH_MAX];

                if (!is_block_name(de->d_name) || strncmp(de->d_name, d->name, strlen(d->name)) != 0)
                        continue; /* also rejects names of TEMPDISK_NAME_MAX or more */
                if (path_printf(sub, sizeof(sub), "%s/%s", path, de->d_name) < 0 ||
                    path_printf(file, sizeof(file), "%s/partition", sub) < 0 || !exists(file))
                        continue;
                if (k >= max)
                        return -E2BIG;
                parts[k] = (Part){};
                memcpy(parts[k].name, de->d_name, strlen(de->d_name) + 1);
                r = sysfs_devnum(sub, &parts[k].dev);
                if (r < 0)
                        return r;
                k++;
        }
        *ret_n = k;
        return 0;
}

static void guard_whole_disk(const TempdiskRoots *roots, const TempdiskDisk *d, TempdiskCheck *c) {
        _cleanup_(closedirp) DIR *slaves = NULL;
        char path[TEMPDISK_PATH_MAX], value[32];
        struct dirent *de;
        struct stat st;

        if (read_valuef(value, sizeof(value), "%s/class/block/%s/partition", roots->sys, d->name) >= 0) {
                verdict(c, TEMPDISK_GUARD_WHOLE_DISK, -ENOTBLK, "%s is partition %s of a disk, not a whole disk",
                        d->path, value);
                return;
        }
        if (path_printf(path, sizeof(path), "%s/class/block/%s/slaves", roots->sys, d->name) >= 0)
                slaves = opendir(path);
        while (slaves && (de = readdir(slaves)))
                if (is_block_name(de->d_name)) {
                        verdict(c, TEMPDISK_GUARD_WHOLE_DISK, -ENOTBLK,
                                "%s is stacked on %s (device-mapper or md), not a disk", d->path, de->d_name);
                        return;
                }
        if (stat(d->path, &st) < 0) {
                verdict(c, TEMPDISK_GUARD_WHOLE_DISK, -ENODEV, "%s: %s", d->path, strerror(errno));
                return;
        }
        if (!S_ISBLK(st.st_mode) || st.st_rdev != d->devnum) {
                verdict(c, TEMPDISK_GUARD_WHOLE_DISK, -ENOTBLK, "%s is not the block device %u:%u that sysfs names %s",
                        d->path, major(d->devnum), minor(d->devnum), d->name);
                return;
        }
        verdict(c, TEMPDISK_GUARD_WHOLE_DISK, 0, "a whole disk");
}

static void guard_holders(const TempdiskRoots *roots, const Part *parts, size_t n_parts, TempdiskCheck *c) {
        for (size_t i = 0; i < n_parts; i++) {
                _cleanup_(closedirp) DIR *dir = NULL;
                char path[TEMPDISK_PATH_MAX];
                struct dirent *de;

                if (path_printf(path, sizeof(path), "%s/class/block/%s/holders", roots->sys, parts[i].name) < 0)
                        continue;
                dir = opendir(path);
                if (!dir && errno != ENOENT) {
                        verdict(c, TEMPDISK_GUARD_HOLDERS, -EBUSY, "cannot list %s: %s", path, strerror(errno));
                        return;
                }
                while (dir && (de = readdir(dir)))
                        if (is_block_name(de->d_name)) {
                                verdict(c, TEMPDISK_GUARD_HOLDERS, -EBUSY,
                                        "%s is held by %s (device-mapper, md or LVM)", parts[i].name, de->d_name);
                                return;
                        }
        }
        verdict(c, TEMPDISK_GUARD_HOLDERS, 0, "no holders");
}

typedef struct InUse {
        const Part *parts;
        size_t n_parts;
        char detail[320];
} InUse;

static int find_mounted(void *userdata, dev_t dev, const char *where, const char *source _unused_) {
        InUse *u = userdata;
        char esc[256];

        for (size_t i = 0; i < u->n_parts; i++)
                if (u->parts[i].dev == dev) {
                        (void) snprintf(u->detail, sizeof(u->detail), "%s is mounted at %s", u->parts[i].name,
                                        log_escape(esc, sizeof(esc), where));
                        return 1;
                }
        return 0;
}

static int find_swap(const TempdiskRoots *roots, InUse *u) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        char path[TEMPDISK_PATH_MAX];
        size_t size = 0;
        bool header = true;

        if (path_printf(path, sizeof(path), "%s/swaps", roots->proc) < 0)
                return -ENAMETOOLONG;
        f = fopen(path, "re");
        if (!f)
                return negative_errno();
        while (getline(&line, &size, f) > 0) {
                char *save = NULL, *name = strtok_r(line, " \t\n", &save), esc[256];
                struct stat st;

                if (header || !name) {
                        header = false;
                        continue;
                }
                unescape_octal(name);
                if (stat(name, &st) < 0)
                        continue;
                for (size_t i = 0; i < u->n_parts; i++)
                        if ((S_ISBLK(st.st_mode) && st.st_rdev == u->parts[i].dev) ||
                            (S_ISREG(st.st_mode) && st.st_dev == u->parts[i].dev)) {
                                (void) snprintf(u->detail, sizeof(u->detail), "%s is in use as swap (%s)",
                                                u->parts[i].name, log_escape(esc, sizeof(esc), name));
                                return 1;
                        }
        }
        return ferror(f) ? -EIO : 0;
}

static void guard_in_use(const TempdiskRoots *roots, const Part *parts, size_t n_parts, TempdiskCheck *c) {
        InUse u = { .parts = parts, .n_parts = n_parts };
        int r;

        r = foreach_mount(roots, find_mounted, &u);
        if (r == 0)
                r = find_swap(roots, &u);
        if (r < 0)
                verdict(c, TEMPDISK_GUARD_IN_USE, -EBUSY, "cannot read the mount and swap tables: %s", strerror(-r));
        else if (r > 0)
                verdict(c, TEMPDISK_GUARD_IN_USE, -EBUSY, "%s", u.detail);
        else
                verdict(c, TEMPDISK_GUARD_IN_USE, 0, "not mounted, not swap");
}

/* ---- content ---- */

typedef struct Region {
        int fd;
        uint64_t offset, size;
} Region;

static int region_read(void *userdata, uint64_t offset, void *buf, size_t size) {
        const Region *reg = userdata;
        ssize_t k;

        if (offset > reg->size || size > reg->size - offset)
                return -ERANGE;
        k = pread(reg->fd, buf, size, (off_t) (reg->offset + offset));
        if (k < 0)
                return negative_errno();
        return (size_t) k == size ? 0 : -EIO;
}

/* A copy of a probing result (libblkid's own string lives only until the next probing call), or
 * NULL when there is none. */
static const char *probe_value(blkid_probe pr, const char *name, char *buf, size_t n) {
        const char *v = NULL;

        if (blkid_probe_lookup_value(pr, name, &v, NULL) < 0 || !v)
                return NULL;
        (void) snprintf(buf, n, "%s", v);
        return buf;
}

/* An NTFS file system at [offset, offset + size): the fresh Azure volume or not. */
static int check_ntfs(int fd, uint64_t offset, uint64_t size, TempdiskContent *ret, char *detail, size_t n) {
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
        Region reg = { .fd = fd, .offset = offset, .size = size };
        char why[256] = "", esc[128], type_buf[64], label_buf[256];
        const char *type, *label;
        int r;

        if (!pr)
                return -ENOMEM;
        if (blkid_probe_set_device(pr, fd, (blkid_loff_t) offset, (blkid_loff_t) size) < 0)
                return -EIO;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_BADCSUM);
        blkid_probe_enable_partitions(pr, 0);
        r = blkid_do_safeprobe(pr);
        type = r == 0 ? probe_value(pr, "TYPE", type_buf, sizeof(type_buf)) : NULL;
        label = r == 0 ? probe_value(pr, "LABEL", label_buf, sizeof(label_buf)) : NULL;
        *ret = TEMPDISK_CONTENT_OTHER;
        if (!type || strcmp(type, "ntfs") != 0)
                return format_reason(detail, n, 0, "a partition holding %s, not NTFS",
                                     type ? log_escape(esc, sizeof(esc), type) : "no known file system");
        if (!label || strcmp(label, NTFS_LABEL) != 0)
                return format_reason(detail, n, 0, "an NTFS volume labelled '%s', not '" NTFS_LABEL "'",
                                     label ? log_escape(esc, sizeof(esc), label) : "");
        r = tempdisk_ntfs_check_root(region_read, &reg, size, why, sizeof(why));
        if (r < 0)
                return format_reason(detail, n, 0, "an NTFS '" NTFS_LABEL "' volume that is not fresh: %s", why);
        *ret = TEMPDISK_CONTENT_AZURE_NTFS;
        return format_reason(detail, n, 0, "Azure's fresh NTFS '" NTFS_LABEL "' volume (only the warning file)");
}

/* The Azure volume sits in the only partition of an MBR (type 0x07) or GPT (basic data) table. */
static int check_partitioned_ntfs(blkid_probe pr, int fd, uint64_t size, const char *pttype, TempdiskContent *ret,
                                  char *detail, size_t n) {
        blkid_partlist ls = blkid_probe_get_partitions(pr);
        blkid_partition par;
        const char *guid;
        int64_t start, len;

        *ret = TEMPDISK_CONTENT_OTHER;
        if (!ls || blkid_partlist_numof_partitions(ls) != 1)
                return format_reason(detail, n, 0, "a partition table of type %s with %d partitions", pttype,
                                     ls ? blkid_partlist_numof_partitions(ls) : -1);
        par = blkid_partlist_get_partition(ls, 0);
        start = par ? blkid_partition_get_start(par) : -1;
        len = par ? blkid_partition_get_size(par) : -1;
        if (start <= 0 || len <= 0 || (uint64_t) start > size / 512 || (uint64_t) len > size / 512 - (uint64_t) start)
                return format_reason(detail, n, 0, "a partition table of type %s with a partition outside the disk", pttype);
        guid = blkid_partition_get_type_string(par);
        if (strcmp(pttype, "dos") == 0 ? blkid_partition_get_type(par) != 0x07
                                       : !guid || strcasecmp(guid, GPT_BASIC_DATA) != 0)
                return format_reason(detail, n, 0, "a partition table of type %s whose partition is not of the NTFS type", pttype);
        return check_ntfs(fd, (uint64_t) start * 512, (uint64_t) len * 512, ret, detail, n);
}

int tempdisk_probe_content(int fd, uint64_t size, TempdiskContent *ret, char *detail, size_t n) {
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
        char esc_type[64], esc_label[128], type_buf[64], pttype_buf[64], label_buf[256], version_buf[16];
        const char *type, *pttype, *label, *version;
        int r;

        *ret = TEMPDISK_CONTENT_UNKNOWN;
        if (!pr)
                return -ENOMEM;
        if (blkid_probe_set_device(pr, fd, 0, (blkid_loff_t) size) < 0)
                return -EIO;
        /* Every superblock libblkid knows, even with a bad checksum, and partition tables, GPT
         * without a protective MBR too (a backup GPT header at the end of the disk counts). */
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_VERSION |
                                                      BLKID_SUBLKS_BADCSUM);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_FORCE_GPT);
        r = blkid_do_safeprobe(pr);
        if (r == 1) {
                *ret = TEMPDISK_CONTENT_BLANK;
                return format_reason(detail, n, 0, "blank (no signature, no partition table)");
        }
        if (r == -2) {
                *ret = TEMPDISK_CONTENT_OTHER;
                return format_reason(detail, n, 0, "several conflicting signatures");
        }
        if (r < 0)
                return -EIO;
        type = probe_value(pr, "TYPE", type_buf, sizeof(type_buf));
        pttype = probe_value(pr, "PTTYPE", pttype_buf, sizeof(pttype_buf));
        label = probe_value(pr, "LABEL", label_buf, sizeof(label_buf));
        version = probe_value(pr, "VERSION", version_buf, sizeof(version_buf));
        (void) log_escape(esc_type, sizeof(esc_type), type ? type : pttype ? pttype : "?");
        (void) log_escape(esc_label, sizeof(esc_label), label ? label : "");
        if (type && pttype) {
                *ret = TEMPDISK_CONTENT_OTHER;
                return format_reason(detail, n, 0, "a signature of type %s and a partition table", esc_type);
        }
        if (type && strcmp(type, "crypto_LUKS") == 0 && version && strcmp(version, "2") == 0 && label &&
            strcmp(label, TEMPDISK_LABEL) == 0) {
                *ret = TEMPDISK_CONTENT_OURS;
                return format_reason(detail, n, 0, "our own earlier LUKS2 volume (label " TEMPDISK_LABEL ")");
        }
        if (type && strcmp(type, "ntfs") == 0)
                return check_ntfs(fd, 0, size, ret, detail, n);
        if (!type && pttype && (strcmp(pttype, "dos") == 0 || strcmp(pttype, "gpt") == 0))
                return check_partitioned_ntfs(pr, fd, size, pttype, ret, detail, n);
        *ret = TEMPDISK_CONTENT_OTHER;
        if (pttype)
                return format_reason(detail, n, 0, "a partition table of type %s", esc_type);
        return format_reason(detail, n, 0, "a signature of type %s%s%s%s", esc_type, label ? " (label '" : "", esc_label,
                             label ? "')" : "");
}

static int device_size(int fd, uint64_t *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISREG(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        return ioctl(fd, BLKGETSIZE64, ret) < 0 ? negative_errno() : 0;
}

/* O_EXCL on a block device fails while anything else holds it exclusively: a mount, a dm or md
 * device, another formatter. The content is read on the same descriptor; when the exclusive open
 * fails a plain read-only one is used, so that --dry-run can still show the content. */
static void guard_exclusive_and_content(const TempdiskDisk *d, TempdiskCheck *c) {
        _cleanup_close_ int fd = open(d->path, O_RDONLY | O_EXCL | O_CLOEXEC | O_NOCTTY);
        char detail[sizeof(c->guard[0].detail)];
        int r;

        if (fd >= 0)
                verdict(c, TEMPDISK_GUARD_EXCLUSIVE, 0, "opened O_EXCL");
        else {
                verdict(c, TEMPDISK_GUARD_EXCLUSIVE, -EBUSY, "%s cannot be opened exclusively: %s", d->path,
                        strerror(errno));
                fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        verdict(c, TEMPDISK_GUARD_CONTENT, -EUCLEAN, "%s cannot be read: %s", d->path, strerror(errno));
                        return;
                }
        }
        r = device_size(fd, &c->size);
        if (r >= 0)
                r = tempdisk_probe_content(fd, c->size, &c->content, detail, sizeof(detail));
        if (r < 0)
                verdict(c, TEMPDISK_GUARD_CONTENT, -EUCLEAN, "%s cannot be probed: %s", d->path, strerror(-r));
        else if (c->content == TEMPDISK_CONTENT_OTHER)
                verdict(c, TEMPDISK_GUARD_CONTENT, -EUCLEAN,
                        "%s holds %s; only a blank disk, Azure's fresh NTFS volume or our own " TEMPDISK_LABEL
                        " LUKS2 volume is formatted",
                        d->path, detail);
        else
                verdict(c, TEMPDISK_GUARD_CONTENT, 0, "%s", detail);
}

int tempdisk_check(const TempdiskRoots *roots, const Config *cfg, const TempdiskDisk *d, TempdiskCheck *ret) {
        Part parts[PARTITIONS_MAX + 1];
        TempdiskCheck c = {};
        size_t n_parts = 0;
        int r;

        guard_whole_disk(roots, d, &c);
        guard_system(roots, cfg, d, &c);
        r = disk_and_partitions(roots, d, parts, ELEMENTSOF(parts), &n_parts);
        if (r < 0) {
                verdict(&c, TEMPDISK_GUARD_HOLDERS, -EBUSY, "cannot list the partitions of %s: %s", d->name, strerror(-r));
                verdict(&c, TEMPDISK_GUARD_IN_USE, -EBUSY, "cannot list the partitions of %s: %s", d->name, strerror(-r));
        } else {
                guard_holders(roots, parts, n_parts, &c);
                guard_in_use(roots, parts, n_parts, &c);
        }
        guard_exclusive_and_content(d, &c);
        *ret = c;
        for (int g = 0; g < _TEMPDISK_GUARD_MAX; g++)
                if (!c.guard[g].ok)
                        return c.guard[g].error;
        return 0;
}
