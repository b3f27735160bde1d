/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cvmcrypt tempdisk: find the temp disk, check every guard, then format it with a fresh key, make
 * the file system and mount it (or, in the initrd, leave units for systemd). Logs once, here. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/swap.h>
#include <unistd.h>

#include "cli.h"
#include "json-strict.h"
#include "log.h"
#include "macro.h"
#include "tempdisk.h"

#define INITRD_RELEASE "/etc/initrd-release"
/* In the initrd the swap file is made on a private mount, before the units mount the disk. */
#define SETUP_MOUNT "/run/cvmcrypt/tempdisk-setup"
#define SWAPFILE_NAME "swapfile"

typedef struct Target {
        char mapping[64];
        char device[96]; /* /dev/mapper/MAPPING */
        char mount[TEMPDISK_MOUNT_MAX];
        char swapfile[TEMPDISK_MOUNT_MAX + 16]; /* empty: no swap */
} Target;

static int make_target(const Config *cfg, size_t index, Target *t) {
        *t = (Target){};
        if (tempdisk_target(cfg, index, t->mapping, sizeof(t->mapping), t->mount, sizeof(t->mount)) < 0 ||
            snprintf(t->device, sizeof(t->device), "/dev/mapper/%s", t->mapping) >= (int) sizeof(t->device))
                return -ENAMETOOLONG;
        /* Swap lives on the first disk only. */
        if (index == 0 && cfg->tempdisk_swap > 0 &&
            snprintf(t->swapfile, sizeof(t->swapfile), "%s/" SWAPFILE_NAME, t->mount) >= (int) sizeof(t->swapfile))
                return -ENAMETOOLONG;
        return 0;
}

static const char *fs_name(TempdiskFs fs) {
        return fs == TEMPDISK_FS_XFS ? "xfs" : "ext4";
}

static void describe_format(const Config *cfg, const Target *t, char *buf, size_t n) {
        if (cfg->tempdisk_crypt == TEMPDISK_CRYPT_PLAIN)
                (void) snprintf(buf, n, "plain dm-crypt aes-xts-plain64, 512-bit key from getrandom, 4096-byte sectors -> %s",
                                t->device);
        else
                (void) snprintf(buf, n,
                                "LUKS2 without keyslots (label " TEMPDISK_LABEL "), aes-xts-plain64, 512-bit key from getrandom, 4096-byte sectors -> %s",
                                t->device);
}

static void print_plan_text(const Config *cfg, const TempdiskDisk *d, const TempdiskCheck *c, const Target *t, bool units) {
        char what[256];

        printf("  %s (found by %s: %s), %.1f GiB\n", d->path, tempdisk_source_to_string(d->source), d->id,
               (double) c->size / (1024.0 * 1024 * 1024));
        for (int g = 0; g < _TEMPDISK_GUARD_MAX; g++)
                printf("    guard %-12s %-8s %s\n", tempdisk_guard_name((TempdiskGuard) g), c->guard[g].ok ? "ok" : "REFUSED",
                       c->guard[g].detail);
        describe_format(cfg, t, what, sizeof(what));
        printf("    format: %s\n", what);
        printf("    mkfs:   %s%s\n", fs_name(cfg->tempdisk_fs),
               cfg->tempdisk_fs == TEMPDISK_FS_XFS ? " (no discard)" : " (64 KiB clusters, lazy inode tables and journal, no discard)");
        printf("    mount:  %s, nosuid,nodev, %s\n", t->mount,
               units ? "by runtime units in " TEMPDISK_UNIT_DIR " (nofail)" : "now");
        if (*t->swapfile)
                printf("    swap:   %llu MiB file %s\n", (unsigned long long) (cfg->tempdisk_swap >> 20), t->swapfile);
        else
                printf("    swap:   none\n");
}

static int plan_json(const Config *cfg, const TempdiskDisk *d, const TempdiskCheck *c, const Target *t, bool units,
                     json_object *arr) {
        json_object *o = json_object_new_object(), *guards = json_object_new_object();
        char what[256];
        int r;

        if (!o || !guards) {
                json_object_put(o);
                json_object_put(guards);
                return -ENOMEM;
        }
        r = json_object_array_add(arr, o) < 0 ? -ENOMEM : 0;
        if (r < 0) {
                json_object_put(o);
                json_object_put(guards);
                return r;
        }
        r = json_add(o, "guards", guards);
        for (int g = 0; r >= 0 && g < _TEMPDISK_GUARD_MAX; g++) {
                json_object *v = json_object_new_object();

                r = json_add(guards, tempdisk_guard_name((TempdiskGuard) g), v);
                if (r >= 0)
                        r = json_add(v, "ok", json_object_new_boolean(c->guard[g].ok));
                if (r >= 0)
                        r = json_add(v, "detail", json_object_new_string(c->guard[g].detail));
        }
        describe_format(cfg, t, what, sizeof(what));
        if (r >= 0)
                r = json_add(o, "device", json_object_new_string(d->path));
        if (r >= 0)
                r = json_add(o, "found-by", json_object_new_string(tempdisk_source_to_string(d->source)));
        if (r >= 0)
                r = json_add(o, "id", json_object_new_string(d->id));
        if (r >= 0)
                r = json_add(o, "size", json_object_new_int64((int64_t) c->size));
        if (r >= 0)
                r = json_add(o, "content", json_object_new_string(tempdisk_content_to_string(c->content)));
        if (r >= 0)
                r = json_add(o, "format", json_object_new_string(what));
        if (r >= 0)
                r = json_add(o, "mapping", json_object_new_string(t->device));
        if (r >= 0)
                r = json_add(o, "fs", json_object_new_string(fs_name(cfg->tempdisk_fs)));
        if (r >= 0)
                r = json_add(o, "mount", json_object_new_string(t->mount));
        if (r >= 0)
                r = json_add(o, "mount-by", json_object_new_string(units ? "unit" : "mount"));
        if (r >= 0)
                r = json_add(o, "swap", json_object_new_int64((int64_t) (*t->swapfile ? cfg->tempdisk_swap : 0)));
        return r;
}

static int print_plan(const Config *cfg, const CliArgs *args, const TempdiskDisk *disks, const TempdiskCheck *checks,
                      size_t n, bool units) {
        _cleanup_(json_object_putp) json_object *root = NULL, *arr = NULL;
        Target t;
        int r;

        if (!args->json)
                printf("tempdisk plan (dry run: nothing is written)\n");
        else {
                root = json_object_new_object();
                arr = json_object_new_array();
                if (!root || !arr || json_add(root, "disks", json_object_get(arr)) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = make_target(cfg, i, &t);
                if (r < 0)
                        return r;
                if (!args->json) {
                        print_plan_text(cfg, &disks[i], &checks[i], &t, units);
                        continue;
                }
                r = plan_json(cfg, &disks[i], &checks[i], &t, units, arr);
                if (r < 0)
                        return r;
        }
        if (args->json)
                puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        return 0;
}

static int first_refusal(const TempdiskCheck *c, TempdiskGuard *ret) {
        for (int g = 0; g < _TEMPDISK_GUARD_MAX; g++)
                if (!c->guard[g].ok) {
                        *ret = (TempdiskGuard) g;
                        return c->guard[g].error;
                }
        return 0;
}

/* A string, or JSON null (json-c's NULL object) when s is empty. */
static int add_string_or_null(json_object *o, const char *key, const char *s) {
        if (*s)
                return json_add(o, key, json_object_new_string(s));
        return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
}

/* Swap in the initrd: the file is made on a private mount now, the units swap it on later. */
static int prepare_swap_for_units(const Config *cfg, const Target *t, char *why, size_t n) {
        char file[sizeof(SETUP_MOUNT) + sizeof(SWAPFILE_NAME) + 1];
        int r;

        r = tempdisk_mount(cfg->tempdisk_fs, t->device, SETUP_MOUNT, why, n);
        if (r < 0)
                return r;
        (void) snprintf(file, sizeof(file), "%s/%s", SETUP_MOUNT, SWAPFILE_NAME);
        r = tempdisk_make_swapfile(file, cfg->tempdisk_swap, why, n);
        if (umount(SETUP_MOUNT) < 0 && r >= 0)
                r = format_reason(why, n, negative_errno(), "cannot unmount %s: %s", SETUP_MOUNT, strerror(errno));
        (void) rmdir(SETUP_MOUNT);
        return r;
}

static int setup_disk(const Config *cfg, const CliArgs *args, const TempdiskDisk *d, size_t index, bool units,
                      json_object *arr) {
        char why[TEMPDISK_WHY_LEN] = "", identity[TEMPDISK_ID_MAX + 64];
        TempdiskFormatted f;
        Target t;
        int r;

        r = make_target(cfg, index, &t);
        if (r < 0)
                return log_error_errno(r, "tempdisk: mount point or mapping name too long");
        r = tempdisk_format(cfg, d, t.mapping, &f, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "tempdisk: %s", why);
        r = tempdisk_mkfs(cfg->tempdisk_fs, t.device, f.size, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "tempdisk: %s: %s", t.device, why);
        if (units) {
                if (*t.swapfile)
                        r = prepare_swap_for_units(cfg, &t, why, sizeof(why));
                if (r >= 0)
                        r = tempdisk_write_units(TEMPDISK_UNIT_DIR, cfg->tempdisk_fs, t.device, t.mount,
                                                 *t.swapfile ? t.swapfile : NULL, why, sizeof(why));
        } else {
                r = tempdisk_mount(cfg->tempdisk_fs, t.device, t.mount, why, sizeof(why));
                if (r >= 0 && *t.swapfile) {
                        r = tempdisk_make_swapfile(t.swapfile, cfg->tempdisk_swap, why, sizeof(why));
                        if (r >= 0 && swapon(t.swapfile, 0) < 0)
                                r = format_reason(why, sizeof(why), negative_errno(), "swapon %s failed: %s", t.swapfile,
                                                  strerror(errno));
                }
        }
        if (r < 0)
                return log_error_errno(r, "tempdisk: %s", why);
        r = tempdisk_identity(d, &f, identity, sizeof(identity));
        if (r < 0)
                return log_error_errno(r, "tempdisk: identity too long");
        if (!args->json) {
                printf("%s: encrypted as %s (%s%s), %s %s %s%s%s\n", d->path, t.device, *f.uuid ? "LUKS2 " : "plain dm-crypt",
                       f.uuid, fs_name(cfg->tempdisk_fs), units ? "mount unit for" : "mounted at", t.mount,
                       *t.swapfile ? ", swap file " : "", t.swapfile);
                printf("identity: %s\n", identity);
                return 0;
        }
        json_object *o = json_object_new_object();
        if (!o || json_object_array_add(arr, o) < 0) {
                json_object_put(o);
                return log_error_errno(-ENOMEM, "tempdisk: out of memory");
        }
        r = json_add(o, "device", json_object_new_string(d->path));
        if (r >= 0)
                r = json_add(o, "mapping", json_object_new_string(t.device));
        if (r >= 0)
                r = add_string_or_null(o, "uuid", f.uuid);
        if (r >= 0)
                r = json_add(o, "fs", json_object_new_string(fs_name(cfg->tempdisk_fs)));
        if (r >= 0)
                r = json_add(o, "mount", json_object_new_string(t.mount));
        if (r >= 0)
                r = json_add(o, "mount-by", json_object_new_string(units ? "unit" : "mount"));
        if (r >= 0)
                r = add_string_or_null(o, "swapfile", t.swapfile);
        if (r >= 0)
                r = json_add(o, "identity", json_object_new_string(identity));
        return r < 0 ? log_error_errno(r, "tempdisk: out of memory") : 0;
}

static int report_nothing(const CliArgs *args, const char *what) {
        if (args->json)
                printf("{\"disks\":[],\"note\":\"%s\"}\n", what);
        else
                printf("tempdisk: %s\n", what);
        return 0;
}

int verb_tempdisk(const Config *cfg, const CliArgs *args, int argc _unused_, char **argv _unused_) {
        TempdiskRoots roots = TEMPDISK_ROOTS_DEFAULT;
        _cleanup_free_ TempdiskDisk *disks = calloc(TEMPDISK_DISKS_MAX, sizeof(TempdiskDisk));
        _cleanup_free_ TempdiskCheck *checks = calloc(TEMPDISK_DISKS_MAX, sizeof(TempdiskCheck));
        _cleanup_(json_object_putp) json_object *root = NULL, *arr = NULL;
        bool units = access(INITRD_RELEASE, F_OK) == 0;
        char why[TEMPDISK_WHY_LEN] = "";
        size_t n = 0, refused = 0;
        TempdiskGuard g = 0;
        int r, first = 0;

        if (!disks || !checks)
                return log_error_errno(-ENOMEM, "tempdisk: out of memory");
        /* The kernel command line's opt-out wins over everything, --device included. */
        if (cfg->tempdisk == TEMPDISK_OFF)
                return report_nothing(args, "turned off (tempdisk=0)");
        r = tempdisk_detect(&roots, cfg, args->device, disks, TEMPDISK_DISKS_MAX, &n, why, sizeof(why));
        if (r < 0)
                return log_error_errno(r, "tempdisk: %s", why);
        if (n == 0)
                return report_nothing(args, "no temp disk found by identity (Azure resource disk, NVMe Direct Disk)");
        for (size_t i = 0; i < n; i++) {
                r = tempdisk_check(&roots, cfg, &disks[i], &checks[i]);
                if (r < 0 && first == 0) {
                        first = first_refusal(&checks[i], &g);
                        refused = i;
                }
        }
        if (args->dry_run) {
                r = print_plan(cfg, args, disks, checks, n, units);
                if (r < 0)
                        return log_error_errno(r, "tempdisk: cannot print the plan: %m");
        }
        /* One refused disk stops all of them: nothing is written to any disk. */
        if (first < 0)
                return log_error_errno(first, "tempdisk: %s refused by the %s guard: %s", disks[refused].path,
                                       tempdisk_guard_name(g), checks[refused].guard[g].detail);
        if (args->dry_run)
                return 0;
        if (args->json) {
                root = json_object_new_object();
                arr = json_object_new_array();
                if (!root || !arr || json_add(root, "disks", json_object_get(arr)) < 0)
                        return log_error_errno(-ENOMEM, "tempdisk: out of memory");
        }
        for (size_t i = 0; i < n; i++) {
                r = setup_disk(cfg, args, &disks[i], i, units, arr);
                if (r < 0)
                        return r;
        }
        if (args->json)
                puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        return 0;
}
