/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <blkid.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "macro.h"

/* The ephemeral temp (resource) disk. It is found by positive identity only, refused unless every
 * guard passes, and formatted with a key that exists only in this boot. Functions return 0 or a
 * negative errno and put a one-line reason into `why`; the verb logs it once. */

#define TEMPDISK_LABEL "cvmcrypt-tempdisk"   /* LUKS2 label of our own volume */
#define TEMPDISK_MAPPING "cvmcrypt-tempdisk" /* /dev/mapper name of the first temp disk */
#define TEMPDISK_DISKS_MAX 16
#define TEMPDISK_WHY_LEN 512
#define TEMPDISK_NAME_MAX 32
#define TEMPDISK_PATH_MAX 512
#define TEMPDISK_ID_MAX 192
#define TEMPDISK_MOUNT_MAX 512
#define TEMPDISK_UUID_MAX 40
/* Where the runtime mount and swap units go when we run in the initrd. */
#define TEMPDISK_UNIT_DIR "/run/systemd/system"

DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);

/* Where sysfs, /dev and /proc are: the real ones in production, fake trees in the unit tests. */
typedef struct TempdiskRoots {
        const char *sys, *dev, *proc;
} TempdiskRoots;

#define TEMPDISK_ROOTS_DEFAULT ((TempdiskRoots){ .sys = "/sys", .dev = "/dev", .proc = "/proc" })

typedef enum TempdiskSource {
        TEMPDISK_SOURCE_OPTION,     /* --device */
        TEMPDISK_SOURCE_CONFIG,     /* tempdisk=/dev/disk/by-... */
        TEMPDISK_SOURCE_AZURE_LINK, /* /dev/disk/azure/resource, from Azure's udev rules */
        TEMPDISK_SOURCE_VMBUS,      /* the SCSI disk the udev rules call the resource disk */
        TEMPDISK_SOURCE_NVME,       /* a "Microsoft NVMe Direct Disk" (v2) namespace */
} TempdiskSource;

typedef struct TempdiskDisk {
        char name[TEMPDISK_NAME_MAX]; /* kernel name, e.g. sdb */
        char path[TEMPDISK_PATH_MAX]; /* device node */
        dev_t devnum;                 /* from sysfs; the guards check the node against it */
        TempdiskSource source;
        char id[TEMPDISK_ID_MAX]; /* stable identity: vmbus:{GUID}:lun1, nvme:SERIAL:ns1, device:PATH */
} TempdiskDisk;

const char *tempdisk_source_to_string(TempdiskSource s);

/* Finds the temp disks: `device` (--device) if given, else the configured tempdisk= path, else by
 * identity, with the SCSI resource disk first and NVMe Direct Disks in controller order; with
 * tempdisk-mode=first only the first. Finding none by identity is not an error (*ret_n = 0); a
 * named device that does not exist is (-ENOENT), and so are two different SCSI disks that both
 * claim to be the resource disk (-EUCLEAN). */
int tempdisk_detect(const TempdiskRoots *roots, const Config *cfg, const char *device, TempdiskDisk *disks,
                    size_t max, size_t *ret_n, char *why, size_t n);

typedef enum TempdiskGuard {
        TEMPDISK_GUARD_WHOLE_DISK, /* a whole disk: not a partition, not stacked on other devices */
        TEMPDISK_GUARD_SYSTEM,     /* holds no root, /boot, ESP or configured volume */
        TEMPDISK_GUARD_HOLDERS,    /* nothing (dm, md, LVM) is stacked on it or its partitions */
        TEMPDISK_GUARD_IN_USE,     /* neither it nor a partition is mounted or swapped on */
        TEMPDISK_GUARD_EXCLUSIVE,  /* it can be opened O_EXCL */
        TEMPDISK_GUARD_CONTENT,    /* blank, Azure's fresh NTFS, or our own earlier LUKS2 */
        _TEMPDISK_GUARD_MAX,
} TempdiskGuard;

typedef enum TempdiskContent {
        TEMPDISK_CONTENT_UNKNOWN,
        TEMPDISK_CONTENT_BLANK,      /* libblkid finds no signature and no partition table */
        TEMPDISK_CONTENT_AZURE_NTFS, /* "Temporary Storage" NTFS, nothing but the warning file */
        TEMPDISK_CONTENT_OURS,       /* LUKS2 labelled cvmcrypt-tempdisk */
        TEMPDISK_CONTENT_OTHER,      /* anything else: refused */
} TempdiskContent;

typedef struct TempdiskVerdict {
        bool ok;
        int error; /* negative errno of a refusal, 0 when ok */
        char detail[320];
} TempdiskVerdict;

typedef struct TempdiskCheck {
        TempdiskVerdict guard[_TEMPDISK_GUARD_MAX];
        TempdiskContent content;
        uint64_t size; /* bytes, 0 when unknown */
} TempdiskCheck;

const char *tempdisk_guard_name(TempdiskGuard g);
const char *tempdisk_content_to_string(TempdiskContent c);

/* Runs every guard; a refusal does not stop the others, so --dry-run can show every verdict.
 * Writes nothing. The configured volumes (cfg->volumes) count as system disks. Returns 0 when all
 * guards passed, else the error of the first refusal (-ENOTBLK, -EBUSY or -EUCLEAN). */
int tempdisk_check(const TempdiskRoots *roots, const Config *cfg, const TempdiskDisk *d, TempdiskCheck *ret);

/* Content of a device or image already open on fd (size bytes), by libblkid and, for NTFS, by
 * reading the root directory. detail says what was found. Exposed for the tests. */
int tempdisk_probe_content(int fd, uint64_t size, TempdiskContent *ret, char *detail, size_t n);

/* Reads size bytes at offset of an NTFS volume into buf; returns 0 or a negative errno. */
typedef int (*TempdiskReadFn)(void *userdata, uint64_t offset, void *buf, size_t size);

/* The NTFS volume (volume_size bytes, host-controlled) holds nothing in its root directory but the
 * system files, DATALOSS_WARNING_README.txt and the System Volume Information directory: 0. Another
 * entry: -EEXIST, named in why. Malformed or unusual layout (attribute lists, compression, sparse
 * runs): -EBADMSG. */
int tempdisk_ntfs_check_root(TempdiskReadFn read_fn, void *userdata, uint64_t volume_size, char *why, size_t n);

/* What formatting disk number `index` makes: the mapping name and the mount point (the first disk
 * gets TEMPDISK_MAPPING and tempdisk-mount, the next ones a "-N" suffix on both). */
int tempdisk_target(const Config *cfg, size_t index, char *mapping, size_t mapping_size, char *mount,
                    size_t mount_size);

typedef struct TempdiskFormatted {
        char uuid[TEMPDISK_UUID_MAX]; /* LUKS2 UUID; empty with tempdisk-crypt=plain */
        uint64_t size;                /* bytes of the mapping, 0 when unknown */
} TempdiskFormatted;

/* Erases the magic of every signature and partition table libblkid finds (on an O_EXCL
 * descriptor), generates a 64-byte key with getrandom into locked memory, writes a LUKS2 header
 * without any keyslot (or nothing, for plain dm-crypt), aes-xts-plain64 with 4096-byte sectors,
 * activates /dev/mapper/<mapping> by that key and wipes the key. Only after tempdisk_check()
 * passed. */
int tempdisk_format(const Config *cfg, const TempdiskDisk *d, const char *mapping, TempdiskFormatted *ret,
                    char *why, size_t n);

/* mkfs.ext4 (64 KiB clusters, lazy inode tables and journal, no discard; 32-bit block numbers when
 * the size, in bytes, is known and allows them) or mkfs.xfs (no discard) on the mapping, run with
 * an explicit argv and environment, never through a shell. */
int tempdisk_mkfs(TempdiskFs fs, const char *device, uint64_t size, char *why, size_t n);

/* Mounts the mapping at `where` (created if missing), nosuid and nodev. */
int tempdisk_mount(TempdiskFs fs, const char *device, const char *where, char *why, size_t n);

/* Creates a swap file of `size` bytes: allocated without writing the data (fallocate), with a swap
 * header we write ourselves, mode 0600. */
int tempdisk_make_swapfile(const char *path, uint64_t size, char *why, size_t n);

/* For the initrd: a runtime .mount unit (and .swap unit when swapfile is not NULL) in unit_dir,
 * wanted by local-fs.target / swap.target, so that a failure does not fail the boot (nofail). */
int tempdisk_write_units(const char *unit_dir, TempdiskFs fs, const char *device, const char *where,
                         const char *swapfile, char *why, size_t n);

/* systemd's name for a unit of an absolute path (systemd-escape --path), plus suffix. */
int tempdisk_unit_name(const char *path, const char *suffix, char *buf, size_t n);

/* The identity to measure into the gate PCR log: "cvmcrypt:tempdisk:ID:UUID" (UUID "plain" for
 * plain dm-crypt). Device identity and header UUID only, never anything derived from the key. */
int tempdisk_identity(const TempdiskDisk *d, const TempdiskFormatted *f, char *buf, size_t n);
