/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "luks-header.h"
#include "luks.h"
#include "macro.h"
#include "secmem.h"
#include "token.h"

#define SECTOR 512u

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);

int reencrypt_finish(struct crypt_device *cd, const char *name, const char *pass, size_t pass_size, int slot_old,
                     int slot_new, uint64_t hotzone, ReencryptProgress progress, void *userdata) {
        struct crypt_params_reencrypt params = { .flags = CRYPT_REENCRYPT_RESUME_ONLY, .max_hotzone_size = hotzone / SECTOR };
        int r;

        /* A run cut off inside a hot zone left it half written: libcryptsetup restores it from the
         * checksums first (what `cryptsetup repair` does), then goes on. */
        if (crypt_reencrypt_status(cd, NULL) == CRYPT_REENCRYPT_CRASH) {
                r = crypt_reencrypt_init_by_passphrase(cd, name, pass, pass_size, slot_old, slot_new, NULL, NULL,
                                                       &(struct crypt_params_reencrypt){ .flags = CRYPT_REENCRYPT_RECOVERY });
                if (r < 0)
                        return r;
                /* Recovering the last hot zone can be the end of it. */
                if (crypt_reencrypt_status(cd, NULL) == CRYPT_REENCRYPT_NONE)
                        return 0;
        }
        r = crypt_reencrypt_init_by_passphrase(cd, name, pass, pass_size, slot_old, slot_new, NULL, NULL, &params);
        if (r < 0)
                return r;
        return crypt_reencrypt_run(cd, progress, userdata);
}

/* Created once, 0600, never over an existing file; flushed before the image changes. */
static int write_key_file(const char *path, const uint8_t *key, size_t size) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0)
                return negative_errno();
        if (write(fd, key, size) != (ssize_t) size || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

static int device_size(int fd, const struct stat *st, uint64_t *ret) {
        if (S_ISREG(st->st_mode)) {
                *ret = (uint64_t) st->st_size;
                return 0;
        }
        return ioctl(fd, BLKGETSIZE64, ret) < 0 ? negative_errno() : 0;
}

typedef struct Probe {
        char type[32];
        uint64_t block_size; /* 0: unknown */
} Probe;

static uint64_t probe_number(blkid_probe pr, const char *name) {
        const char *v = NULL;
        uint64_t x = 0;

        if (blkid_probe_lookup_value(pr, name, &v, NULL) < 0 || !v)
                return 0;
        for (; *v >= '0' && *v <= '9' && x < UINT64_MAX / 10; v++)
                x = x * 10 + (uint64_t) (*v - '0');
        return *v ? 0 : x;
}

static int probe(int fd, Probe *ret) {
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
        const char *type = NULL;
        int r;

        *ret = (Probe){};
        if (!pr || blkid_probe_set_device(pr, fd, 0, 0) < 0)
                return -ENOMEM;
        (void) blkid_probe_enable_superblocks(pr, 1);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
        (void) blkid_probe_enable_partitions(pr, 1);
        r = blkid_do_safeprobe(pr);
        if (r < 0)
                return -EIO;
        if (r == 0 && blkid_probe_lookup_value(pr, "TYPE", &type, NULL) >= 0 && type)
                (void) snprintf(ret->type, sizeof(ret->type), "%s", type);
        else if (r == 0 && blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) >= 0 && type)
                (void) snprintf(ret->type, sizeof(ret->type), "partition table %s", type);
        ret->block_size = probe_number(pr, "BLOCK_SIZE");
        return 0;
}

/* Finishes an encryption that image-prepare started earlier, with the key from its token. */
static int resume_encryption(struct crypt_device *cd, const char *image, ImagePrepareResult *res, char *why, size_t n) {
        char reason[TOKEN_WHY_MAX] = "";
        ProvisionToken t;
        const char *json;
        int r = -ENOENT;

        for (int id = 0; id < LUKS_SLOTS_MAX && r < 0; id++) {
                const char *type = NULL;

                if (crypt_token_status(cd, id, &type) < CRYPT_TOKEN_EXTERNAL || !type ||
                    strcmp(type, TOKEN_PROVISION_TYPE) != 0 || crypt_token_json_get(cd, id, &json) < 0)
                        continue;
                r = token_provision_parse(json, &t, reason, sizeof(reason));
                if (r >= 0)
                        res->token = id;
        }
        if (r < 0)
                return format_reason(why, n, -EUCLEAN, "%s: a LUKS2 encryption is pending, but not one image-prepare started%s%s",
                                     image, *reason ? ": " : "", reason);
        r = reencrypt_finish(cd, NULL, (const char *) t.key, sizeof(t.key), CRYPT_ANY_SLOT, (int) t.keyslot, 0, NULL, NULL);
        secmem_wipe(t.key, sizeof(t.key));
        if (r < 0)
                return format_reason(why, n, r, "%s: resuming the encryption failed: %s", image, strerror(-r));
        res->keyslot = (int) t.keyslot;
        res->resumed = res->encrypted = true;
        return 0;
}

static int add_provision_token(struct crypt_device *cd, const ImagePrepareParams *p, int slot, const uint8_t *key,
                               int *ret_token) {
        _cleanup_free_ char *json = NULL;
        ProvisionToken t = { .keyslot = (unsigned) slot, .bank = p->bank, .pcr_mask = p->pcr_mask };
        int r;

        memcpy(t.key, key, sizeof(t.key));
        r = token_provision_format(&t, &json);
        secmem_wipe(t.key, sizeof(t.key));
        if (r < 0)
                return r;
        r = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json);
        if (r < 0)
                return r;
        *ret_token = r;
        return 0;
}

/* A plain file system: format a LUKS2 header in memory, initialize the encryption with the data
 * shifted back, write the header in front, and run the encryption offline. */
static int encrypt_plain(int fd, const struct stat *st, const char *image, const Probe *pr, const ImagePrepareParams *p,
                         const uint8_t *key, ImagePrepareResult *res, char *why, size_t n) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_close_ int mfd = -1;
        struct crypt_params_luks2 luks2 = {};
        struct crypt_params_reencrypt params = {
                .mode = CRYPT_REENCRYPT_ENCRYPT,
                .direction = CRYPT_REENCRYPT_BACKWARD,
                .resilience = "datashift",
                .hash = "sha256",
                .data_shift = IMAGE_HEADER_ROOM / 2 / SECTOR,
                .luks2 = &luks2,
                .flags = CRYPT_REENCRYPT_INITIALIZE_ONLY | CRYPT_REENCRYPT_MOVE_FIRST_SEGMENT,
        };
        char hdr_path[32];
        uint64_t size;
        int r, slot;

        r = device_size(fd, st, &size);
        if (r < 0)
                return format_reason(why, n, r, "cannot size %s: %s", image, strerror(-r));
        /* The file system's blocks are whole sectors: 4096-byte sectors, when they fit, make
         * dm-crypt cheaper at every boot. */
        luks2.sector_size = pr->block_size >= 4096 && (size % 4096) == 0 ? 4096 : SECTOR;
        /* A partition cannot grow: its last IMAGE_HEADER_ROOM bytes must be free, as for
         * `cryptsetup reencrypt --encrypt --reduce-device-size` (the man page says how to shrink). */
        if (S_ISREG(st->st_mode)) {
                if (ftruncate(fd, (off_t) (size + IMAGE_HEADER_ROOM)) < 0) {
                        r = negative_errno();
                        return format_reason(why, n, r, "cannot grow %s by the header room: %s", image, strerror(-r));
                }
                res->grown = IMAGE_HEADER_ROOM;
        } else if (size < 2 * IMAGE_HEADER_ROOM)
                return format_reason(why, n, -ENOSPC, "%s is too small for the %u MiB header room", image,
                                     IMAGE_HEADER_ROOM >> 20);

        mfd = memfd_create("cvmcrypt-image-header", MFD_CLOEXEC);
        if (mfd < 0 || ftruncate(mfd, 4096) < 0) {
                r = negative_errno();
                return format_reason(why, n, r, "cannot create the header in memory: %s", strerror(-r));
        }
        (void) snprintf(hdr_path, sizeof(hdr_path), "/proc/self/fd/%d", mfd);
        r = crypt_init_data_device(&cd, hdr_path, image);
        if (r >= 0)
                r = luks_use_fast_kdf(cd);
        if (r >= 0)
                r = crypt_set_data_offset(cd, IMAGE_HEADER_ROOM / 2 / SECTOR);
        if (r >= 0)
                r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, NULL, 64, &luks2);
        if (r < 0)
                return format_reason(why, n, r, "%s: formatting the LUKS2 header failed: %s", image, strerror(-r));
        slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 64, (const char *) key, IMAGE_BUILD_KEY_SIZE);
        if (slot < 0)
                return format_reason(why, n, slot, "%s: adding the build-time keyslot failed: %s", image, strerror(-slot));
        r = add_provision_token(cd, p, slot, key, &res->token);
        if (r < 0)
                return format_reason(why, n, r, "%s: writing the provisioning token failed: %s", image, strerror(-r));
        r = crypt_reencrypt_init_by_passphrase(cd, NULL, (const char *) key, IMAGE_BUILD_KEY_SIZE, CRYPT_ANY_SLOT, slot,
                                               "aes", "xts-plain64", &params);
        if (r < 0)
                return format_reason(why, n, r, "%s: initializing the encryption failed: %s", image, strerror(-r));
        crypt_free(TAKE_PTR(cd));

        /* From here on the image is LUKS2 with the encryption pending: running image-prepare again
         * resumes it. */
        r = crypt_init(&cd, image);
        if (r >= 0)
                r = crypt_header_restore(cd, CRYPT_LUKS2, hdr_path);
        if (r < 0)
                return format_reason(why, n, r, "%s: writing the LUKS2 header failed: %s", image, strerror(-r));
        crypt_free(TAKE_PTR(cd));
        r = crypt_init(&cd, image);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r >= 0)
                r = reencrypt_finish(cd, NULL, (const char *) key, IMAGE_BUILD_KEY_SIZE, CRYPT_ANY_SLOT, slot, 0, NULL, NULL);
        if (r < 0)
                return format_reason(why, n, r, "%s: the encryption failed (run image-prepare again to resume): %s", image,
                                     strerror(-r));
        res->encrypted = true;
        res->keyslot = slot;
        res->sector_size = luks2.sector_size;
        return 0;
}

/* An image that is LUKS2 already: the provisioning keyslot next to the existing ones. */
static int add_to_luks(const char *image, const ImagePrepareParams *p, const uint8_t *key, ImagePrepareResult *res,
                       char *why, size_t n) {
        _cleanup_(luks_header_done) LuksHeader hdr = LUKS_HEADER_NULL;
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secmem_ uint8_t *vk = secmem_alloc(64);
        char reason[LUKS_WHY_MAX] = "";
        size_t vk_size = 64;
        int r, slot;

        if (!vk)
                return format_reason(why, n, -ENOMEM, "out of memory");
        /* The first boot would refuse a header outside the allow-list: say so now. */
        r = luks_header_snapshot(image, LUKS_SNAPSHOT_HEADERS, &hdr, reason, sizeof(reason));
        if (r < 0)
                return format_reason(why, n, -EUCLEAN, "%s: the boot would reject this LUKS2 header: %s", image, reason);
        r = crypt_init(&cd, image);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r >= 0)
                r = luks_use_fast_kdf(cd);
        if (r < 0)
                return format_reason(why, n, r, "%s: cannot open the LUKS2 header: %s", image, strerror(-r));
        if (!p->unlock_secret ||
            crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *) vk, &vk_size, p->unlock_secret, p->unlock_size) < 0)
                return format_reason(why, n, -ENOKEY, "%s: %s", image,
                                     p->unlock_secret ? "the passphrase opens no keyslot" : "LUKS2 already: give its passphrase (--unlock-key-file)");
        slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, (const char *) vk, vk_size, (const char *) key,
                                               IMAGE_BUILD_KEY_SIZE);
        if (slot < 0)
                return format_reason(why, n, slot, "%s: adding the build-time keyslot failed: %s", image, strerror(-slot));
        r = add_provision_token(cd, p, slot, key, &res->token);
        if (r < 0) {
                (void) crypt_keyslot_destroy(cd, slot);
                return format_reason(why, n, r, "%s: writing the provisioning token failed: %s", image, strerror(-r));
        }
        res->keyslot = slot;
        res->sector_size = hdr.info.sector_size;
        return 0;
}

static bool has_provision_token(struct crypt_device *cd) {
        for (int id = 0; id < LUKS_SLOTS_MAX; id++) {
                const char *type = NULL;

                if (crypt_token_status(cd, id, &type) >= CRYPT_TOKEN_EXTERNAL && type &&
                    strcmp(type, TOKEN_PROVISION_TYPE) == 0)
                        return true;
        }
        return false;
}

int image_prepare(const char *image, const ImagePrepareParams *p, ImagePrepareResult *ret, char *why, size_t n) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_secmem_ uint8_t *key = secmem_alloc(IMAGE_BUILD_KEY_SIZE);
        _cleanup_close_ int fd = -1;
        ImagePrepareResult res = { .keyslot = -1, .token = -1 };
        struct stat st;
        Probe pr;
        int r;

        if (!key)
                return format_reason(why, n, -ENOMEM, "out of memory");
        luks_log_setup();
        fd = open(image, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                return format_reason(why, n, r, "cannot open %s: %s", image, strerror(-r));
        }
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                return format_reason(why, n, -ENOTBLK, "%s is neither an image file nor a block device", image);
        r = probe(fd, &pr);
        if (r < 0)
                return format_reason(why, n, r, "cannot probe %s: %s", image, strerror(-r));

        if (strcmp(pr.type, "crypto_LUKS") == 0) {
                r = crypt_init(&cd, image);
                if (r >= 0)
                        r = crypt_load(cd, CRYPT_LUKS2, NULL);
                if (r < 0)
                        return format_reason(why, n, -EMEDIUMTYPE, "%s: LUKS, but not a LUKS2 header libcryptsetup loads: %s",
                                             image, strerror(-r));
                if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE) {
                        r = resume_encryption(cd, image, &res, why, n);
                        if (r < 0)
                                return r;
                        goto done;
                }
                if (has_provision_token(cd))
                        return format_reason(why, n, -EALREADY, "%s already carries a %s token", image, TOKEN_PROVISION_TYPE);
                crypt_free(TAKE_PTR(cd));
        } else if (!*pr.type || strncmp(pr.type, "partition table", 15) == 0)
                return format_reason(why, n, -EMEDIUMTYPE, "%s: %s%s", image, *pr.type ? pr.type : "no file system found",
                                     *pr.type ? ": give the root partition, not the whole disk" : "");

        if (getrandom(key, IMAGE_BUILD_KEY_SIZE, 0) != IMAGE_BUILD_KEY_SIZE)
                return format_reason(why, n, -EIO, "cannot generate the build-time key");
        /* The key file first: an image whose key nobody has is of no use. */
        r = write_key_file(p->key_file, key, IMAGE_BUILD_KEY_SIZE);
        if (r < 0)
                return format_reason(why, n, r, "cannot create the key file %s: %s", p->key_file,
                                     r == -EEXIST ? "it exists (it is never overwritten)" : strerror(-r));
        if (strcmp(pr.type, "crypto_LUKS") == 0)
                r = add_to_luks(image, p, key, &res, why, n);
        else {
                (void) snprintf(res.fs_type, sizeof(res.fs_type), "%s", pr.type);
                r = encrypt_plain(fd, &st, image, &pr, p, key, &res, why, n);
        }
        if (r < 0)
                return r;
done:
        crypt_free(TAKE_PTR(cd)); /* the resumed encryption's context: read the header back afresh */
        r = crypt_init(&cd, image);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return format_reason(why, n, r, "%s: cannot read the new header back: %s", image, strerror(-r));
        (void) snprintf(res.uuid, sizeof(res.uuid), "%s", crypt_get_uuid(cd) ?: "");
        if (!res.sector_size)
                res.sector_size = (uint32_t) crypt_get_sector_size(cd);
        *ret = res;
        return 0;
}
