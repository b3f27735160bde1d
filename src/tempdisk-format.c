/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Temp disk: fresh-key format, mkfs, mount, swap, runtime units. Called only for a disk whose
 * guards all passed (tempdisk.c). */
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "luks.h"
#include "macro.h"
#include "secmem.h"
#include "tempdisk.h"

#define KEY_SIZE 64     /* aes-xts-plain64 with two 256-bit keys */
#define SECTOR_SIZE 4096
/* The smallest LUKS2 areas: the volume has no keyslot and no token to describe. The header then
 * costs about 1 MiB of writes, whatever the size of the disk. */
#define LUKS2_METADATA_SIZE 16384
#define LUKS2_KEYSLOTS_SIZE 4096
#define FS_LABEL "tempdisk"
#define SWAP_LABEL "cvmcrypt-swap"
#define SWAP_PAGES_MIN 10 /* what the kernel's swapon accepts */
#define TOOL_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
#define WIPE_MAX 64 /* signatures erased, at most */
#define JOURNAL_FIXED_FROM (UINT64_C(16) << 30) /* where mke2fs's own journal would pass 128 MiB */

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);

int tempdisk_target(const Config *cfg, size_t index, char *mapping, size_t mapping_size, char *mount,
                    size_t mount_size) {
        int r;

        if (index == 0) {
                r = path_printf(mapping, mapping_size, "%s", TEMPDISK_MAPPING);
                return r < 0 ? r : path_printf(mount, mount_size, "%s", cfg->tempdisk_mount);
        }
        r = path_printf(mapping, mapping_size, "%s-%zu", TEMPDISK_MAPPING, index);
        return r < 0 ? r : path_printf(mount, mount_size, "%s-%zu", cfg->tempdisk_mount, index);
}

/* As wipefs -a: the magic bytes of every signature and partition table libblkid finds, so nothing
 * of the old content outlives the format. A backup GPT header at the end of an Azure disk would
 * otherwise sit beside our header, and the next boot would refuse its own volume. */
static int wipe_signatures(const char *path, char *why, size_t n) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_EXCL | O_CLOEXEC | O_NOCTTY);
        _cleanup_(blkid_free_probep) blkid_probe pr = NULL;
        int i, r = 0;

        if (fd < 0)
                return format_reason(why, n, negative_errno(), "%s: cannot open exclusively for writing: %s", path,
                                     strerror(errno));
        pr = blkid_new_probe();
        if (!pr || blkid_probe_set_device(pr, fd, 0, 0) < 0)
                return format_reason(why, n, -ENOMEM, "%s: cannot set up libblkid", path);
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
        for (i = 0; i < WIPE_MAX && (r = blkid_do_probe(pr)) == 0; i++)
                if (blkid_do_wipe(pr, 0) < 0)
                        return format_reason(why, n, -EIO, "%s: cannot erase an old signature", path);
        if (r < 0)
                return format_reason(why, n, -EIO, "%s: probing for old signatures failed", path);
        if (i == WIPE_MAX)
                return format_reason(why, n, -EUCLEAN, "%s: more than %d old signatures", path, WIPE_MAX);
        if (fsync(fd) < 0)
                return format_reason(why, n, negative_errno(), "%s: %s", path, strerror(errno));
        return 0;
}

int tempdisk_format(const Config *cfg, const TempdiskDisk *d, const char *mapping, TempdiskFormatted *ret,
                    char *why, size_t n) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secmem_ char *key = secmem_alloc(KEY_SIZE);
        bool plain = cfg->tempdisk_crypt == TEMPDISK_CRYPT_PLAIN;
        struct crypt_active_device active;
        TempdiskFormatted f = {};
        const char *uuid;
        int r;

        if (!key)
                return format_reason(why, n, -ENOMEM, "cannot allocate locked memory for the key");
        r = wipe_signatures(d->path, why, n);
        if (r < 0)
                return r;
        if (getrandom(key, KEY_SIZE, 0) != KEY_SIZE)
                return format_reason(why, n, -EIO, "getrandom failed: %s", strerror(errno));
        luks_log_setup();
        r = crypt_init(&cd, d->path);
        if (r < 0)
                return format_reason(why, n, r, "%s: cannot open: %s", d->path, strerror(-r));
        if (plain) {
                struct crypt_params_plain p = { .sector_size = SECTOR_SIZE };

                r = crypt_format(cd, CRYPT_PLAIN, "aes", "xts-plain64", NULL, NULL, KEY_SIZE, &p);
        } else {
                /* The digest that checks a volume key needs no slow KDF: the key is 512 random bits. */
                static const struct crypt_pbkdf_type fast = {
                        .type = CRYPT_KDF_PBKDF2,
                        .hash = "sha256",
                        .iterations = 1000,
                        .flags = CRYPT_PBKDF_NO_BENCHMARK,
                };
                struct crypt_params_luks2 p = { .pbkdf = &fast, .sector_size = SECTOR_SIZE, .label = TEMPDISK_LABEL };

                r = crypt_set_metadata_size(cd, LUKS2_METADATA_SIZE, LUKS2_KEYSLOTS_SIZE);
                /* No keyslot: nothing on the disk can ever give the key back. */
                if (r >= 0)
                        r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, key, KEY_SIZE, &p);
        }
        if (r < 0)
                return format_reason(why, n, r, "%s: cannot set up %s: %s", d->path, plain ? "plain dm-crypt" : "the LUKS2 header",
                                     strerror(-r));
        r = crypt_activate_by_volume_key(cd, mapping, key, KEY_SIZE, 0);
        /* From here on the kernel holds the only copy. */
        key = secmem_free(key);
        uuid = plain ? NULL : crypt_get_uuid(cd);
        if (uuid)
                (void) path_printf(f.uuid, sizeof(f.uuid), "%s", uuid);
        if (r >= 0 && crypt_get_active_device(cd, mapping, &active) >= 0)
                f.size = active.size << 9; /* 512-byte sectors */
        crypt_free(TAKE_PTR(cd)); /* wipes libcryptsetup's copy of the key */
        /* Without device-mapper in the kernel libcryptsetup says "not supported": a device problem. */
        if (r < 0)
                return format_reason(why, n, r == -EOPNOTSUPP ? -ENODEV : r, "%s: activating /dev/mapper/%s failed: %s%s",
                                     d->path, mapping, strerror(-r), r == -EOPNOTSUPP ? " (no device-mapper?)" : "");
        *ret = f;
        return 0;
}

static int find_tool(const char *name, char *buf, size_t n) {
        static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (path_printf(buf, n, "%s/%s", dirs[i], name) >= 0 && access(buf, X_OK) == 0)
                        return 0;
        return -ENOENT;
}

/* Runs a tool with exactly this argv and a fixed environment: no shell, nothing inherited that
 * could change what it does. Its output goes to our stderr, so stdout stays ours. */
static int run_tool(char *const argv[], char *why, size_t n) {
        _cleanup_(posix_spawn_file_actions_destroy) posix_spawn_file_actions_t fa = {};
        char *const envp[] = { "PATH=" TOOL_PATH, "LC_ALL=C", NULL };
        char path[256];
        pid_t pid;
        int r, status;

        r = find_tool(argv[0], path, sizeof(path));
        if (r < 0)
                return format_reason(why, n, r, "%s not found in " TOOL_PATH, argv[0]);
        r = posix_spawn_file_actions_init(&fa);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawn(&pid, path, &fa, NULL, argv, envp);
        if (r != 0)
                return format_reason(why, n, -r, "cannot run %s: %s", path, strerror(r));
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return format_reason(why, n, negative_errno(), "waiting for %s: %s", argv[0], strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return format_reason(why, n, -EIO, "%s failed (%s %d)", argv[0], WIFEXITED(status) ? "exit status" : "signal",
                                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return 0;
}

int tempdisk_mkfs(TempdiskFs fs, const char *device, uint64_t size, char *why, size_t n) {
        /* Formatting writes metadata only: lazy inode tables (ext4lazyinit zeroes them later) and
         * an unzeroed journal (under a new key old content reads as noise, never as a journal to
         * replay), no discard. What is left grows with the number of block groups, in mke2fs and
         * in the mount, so: 64 KiB clusters (bigalloc), one group per 2 GiB instead of 128 MiB,
         * and the mount takes the overhead from the superblock instead of walking every group;
         * one inode per cluster; no backup superblocks and no blocks reserved for online growth
         * (the file system is made anew at every boot and never grows); 32-byte group
         * descriptors (32-bit block numbers reach 16 TiB); all bitmaps and inode tables at the
         * start in one flex group, so that only the groups they fill have bitmaps to write
         * (packed_meta_blocks lays them out alike, but mke2fs then searches for each inode table
         * block by block). mke2fs sizes the journal by the file system, up to 1 GiB: from 16 GiB
         * on it stays at 128 MiB, below -j keeps mke2fs's size. Checksums (metadata_csum) come
         * with mke2fs's ext4 defaults. */
        bool small = size > 0 && size / 4096 <= UINT32_MAX;
        char *const ext4[] = { "mkfs.ext4", "-q", "-F", "-L", FS_LABEL, "-O",
                               small ? "bigalloc,sparse_super2,^resize_inode,^64bit" : "bigalloc,sparse_super2,^resize_inode",
                               "-C", "65536", "-i", "65536", "-G", "4096",
                               "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,num_backup_sb=0",
                               size >= JOURNAL_FIXED_FROM ? "-Jsize=128" : "-j", (char *) device, NULL };
        char *const xfs[] = { "mkfs.xfs", "-q", "-f", "-K", "-L", FS_LABEL, (char *) device, NULL };

        return run_tool(fs == TEMPDISK_FS_XFS ? xfs : ext4, why, n);
}

static int mkdir_p(const char *path, mode_t mode) {
        char buf[TEMPDISK_MOUNT_MAX];

        if (path_printf(buf, sizeof(buf), "%s", path) < 0)
                return -ENAMETOOLONG;
        for (char *p = buf + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;

                *p = '\0';
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                if (saved == '\0')
                        return 0;
                *p = saved;
        }
}

int tempdisk_mount(TempdiskFs fs, const char *device, const char *where, char *why, size_t n) {
        int r;

        r = mkdir_p(where, 0755);
        if (r < 0)
                return format_reason(why, n, r, "cannot create %s: %s", where, strerror(-r));
        if (mount(device, where, fs == TEMPDISK_FS_XFS ? "xfs" : "ext4", MS_NOSUID | MS_NODEV, NULL) < 0)
                return format_reason(why, n, negative_errno(), "mounting %s at %s failed: %s", device, where,
                                     strerror(errno));
        return 0;
}

/* The version-1 swap header (linux/swap.h): at 1024 version, last page, number of bad pages, UUID,
 * label; the magic in the last ten bytes of the first page. */
static int swap_header(uint8_t *page, size_t page_size, uint64_t size) {
        uint32_t version = 1, last = (uint32_t) (size / page_size - 1), bad = 0;
        uint8_t uuid[16];

        if (getrandom(uuid, sizeof(uuid), 0) != sizeof(uuid))
                return -EIO;
        uuid[6] = (uint8_t) ((uuid[6] & 0x0f) | 0x40);
        uuid[8] = (uint8_t) ((uuid[8] & 0x3f) | 0x80);
        memcpy(page + 1024, &version, 4);
        memcpy(page + 1028, &last, 4);
        memcpy(page + 1032, &bad, 4);
        memcpy(page + 1036, uuid, sizeof(uuid));
        memcpy(page + 1052, SWAP_LABEL, sizeof(SWAP_LABEL) - 1);
        memcpy(page + page_size - 10, "SWAPSPACE2", 10);
        return 0;
}

int tempdisk_make_swapfile(const char *path, uint64_t size, char *why, size_t n) {
        size_t page_size = (size_t) sysconf(_SC_PAGESIZE);
        _cleanup_free_ uint8_t *page = calloc(1, page_size);
        _cleanup_close_ int fd = -1;
        int r;

        if (!page)
                return format_reason(why, n, -ENOMEM, "out of memory");
        if (size % page_size != 0 || size / page_size < SWAP_PAGES_MIN || size / page_size > UINT32_MAX)
                return format_reason(why, n, -EINVAL, "swap size %llu is not a usable number of pages",
                                     (unsigned long long) size);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return format_reason(why, n, negative_errno(), "cannot create %s: %s", path, strerror(errno));
        /* Allocated, not written: swapon accepts unwritten extents, so this costs no data writes. */
        r = fallocate(fd, 0, 0, (off_t) size) < 0 ? negative_errno() : swap_header(page, page_size, size);
        if (r >= 0 && (pwrite(fd, page, page_size, 0) != (ssize_t) page_size || fsync(fd) < 0))
                r = negative_errno();
        if (r < 0) {
                (void) unlink(path);
                return format_reason(why, n, r, "cannot make the swap file %s: %s", path, strerror(-r));
        }
        return 0;
}

int tempdisk_unit_name(const char *path, const char *suffix, char *buf, size_t n) {
        static const char hex[] = "0123456789abcdef";
        const char *p = path;
        size_t k = 0;

        if (*p != '/' || n == 0)
                return -EINVAL;
        while (*p == '/')
                p++;
        if (!*p)
                return path_printf(buf, n, "-%s", suffix);
        for (; *p; p++) {
                bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                             *p == ':' || *p == '_' || (*p == '.' && k > 0);

                if (*p == '/') {
                        if (p[1] == '/' || p[1] == '\0')
                                continue;
                        if (k + 1 >= n)
                                return -ENAMETOOLONG;
                        buf[k++] = '-';
                } else if (plain) {
                        if (k + 1 >= n)
                                return -ENAMETOOLONG;
                        buf[k++] = *p;
                } else {
                        if (k + 4 >= n)
                                return -ENAMETOOLONG;
                        buf[k++] = '\\';
                        buf[k++] = 'x';
                        buf[k++] = hex[(unsigned char) *p >> 4];
                        buf[k++] = hex[(unsigned char) *p & 0xf];
                }
        }
        buf[k] = '\0';
        return path_printf(buf + k, n - k, "%s", suffix);
}

static int write_file(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        size_t len = strlen(text);

        if (fd < 0)
                return negative_errno();
        if (write(fd, text, len) != (ssize_t) len)
                return errno ? negative_errno() : -EIO;
        return 0;
}

/* unit_dir/NAME and unit_dir/TARGET.wants/NAME -> ../NAME: wanted by the target, not required
 * and not ordered before it, so a failure neither fails nor holds up the boot (what nofail means
 * in fstab). */
static int install_unit(const char *unit_dir, const char *name, const char *target, const char *text) {
        char path[TEMPDISK_PATH_MAX], link[TEMPDISK_PATH_MAX], dest[TEMPDISK_PATH_MAX];
        int r;

        if (path_printf(path, sizeof(path), "%s/%s", unit_dir, name) < 0 ||
            path_printf(link, sizeof(link), "%s/%s.wants", unit_dir, target) < 0 || path_printf(dest, sizeof(dest), "../%s", name) < 0)
                return -ENAMETOOLONG;
        r = mkdir_p(unit_dir, 0755);
        if (r < 0)
                return r;
        r = write_file(path, text);
        if (r < 0)
                return r;
        r = mkdir_p(link, 0755);
        if (r < 0)
                return r;
        if (path_printf(link + strlen(link), sizeof(link) - strlen(link), "/%s", name) < 0)
                return -ENAMETOOLONG;
        if (unlink(link) < 0 && errno != ENOENT)
                return negative_errno();
        return symlink(dest, link) < 0 ? negative_errno() : 0;
}

int tempdisk_write_units(const char *unit_dir, TempdiskFs fs, const char *device, const char *where,
                         const char *swapfile, char *why, size_t n) {
        char mount_unit[TEMPDISK_PATH_MAX], device_unit[TEMPDISK_PATH_MAX], swap_unit[TEMPDISK_PATH_MAX], text[2048];
        int r;

        /* '%' starts a specifier in unit files; the paths come from clean configuration values. */
        if (strchr(device, '%') || strchr(where, '%') || (swapfile && strchr(swapfile, '%')))
                return format_reason(why, n, -EINVAL, "a path with '%%' cannot go into a unit file");
        if (tempdisk_unit_name(where, ".mount", mount_unit, sizeof(mount_unit)) < 0 ||
            tempdisk_unit_name(device, ".device", device_unit, sizeof(device_unit)) < 0 ||
            (swapfile && tempdisk_unit_name(swapfile, ".swap", swap_unit, sizeof(swap_unit)) < 0))
                return format_reason(why, n, -ENAMETOOLONG, "path too long for a unit name");
        r = path_printf(text, sizeof(text),
                 "# Generated by cvmcrypt tempdisk: the temp disk, encrypted with a key that exists only in this boot.\n"
                 "[Unit]\n"
                 "Description=Encrypted temp disk (cvmcrypt)\n"
                 "Documentation=man:cvmcrypt(8)\n"
                 "Requires=%s\n"
                 "After=%s\n"
                 "\n"
                 "[Mount]\n"
                 "What=%s\n"
                 "Where=%s\n"
                 "Type=%s\n"
                 "Options=nofail,nosuid,nodev\n",
                 device_unit, device_unit, device, where, fs == TEMPDISK_FS_XFS ? "xfs" : "ext4");
        if (r >= 0)
                r = install_unit(unit_dir, mount_unit, "local-fs.target", text);
        if (r < 0)
                return format_reason(why, n, r, "cannot write %s/%s: %s", unit_dir, mount_unit, strerror(-r));
        if (!swapfile)
                return 0;
        r = path_printf(text, sizeof(text),
                 "# Generated by cvmcrypt tempdisk: swap on the encrypted temp disk.\n"
                 "[Unit]\n"
                 "Description=Swap on the encrypted temp disk (cvmcrypt)\n"
                 "Documentation=man:cvmcrypt(8)\n"
                 "Requires=%s\n"
                 "After=%s\n"
                 "\n"
                 "[Swap]\n"
                 "What=%s\n"
                 "Options=nofail\n",
                 mount_unit, mount_unit, swapfile);
        if (r >= 0)
                r = install_unit(unit_dir, swap_unit, "swap.target", text);
        if (r < 0)
                return format_reason(why, n, r, "cannot write %s/%s: %s", unit_dir, swap_unit, strerror(-r));
        return 0;
}

int tempdisk_identity(const TempdiskDisk *d, const TempdiskFormatted *f, char *buf, size_t n) {
        return path_printf(buf, n, "cvmcrypt:tempdisk:%s:%s", d->id, *f->uuid ? f->uuid : "plain");
}
