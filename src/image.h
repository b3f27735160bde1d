/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* image-prepare: the image builder's side of first-boot provisioning (provision.h). A raw disk
 * image (or a partition) with a plain file system is encrypted in place into LUKS2 by
 * libcryptsetup's offline encryption, which needs no device-mapper: the header goes in front, the
 * data moves back by IMAGE_HEADER_ROOM, so an image file grows by that much and a partition must
 * leave it free at its end. An image that is LUKS2 already gets the same keyslot, opened with its
 * known passphrase. Either way the volume ends up with a build-time keyslot whose passphrase is a
 * fresh random key, and a cvmcrypt-provision token that holds that key and marks the slot as one
 * the first boot replaces. The image holds no other secret.
 *
 * An interrupted encryption resumes when image-prepare runs again on the same image (the key is in
 * the token). Returns 0 or a negative errno, with `why` for the caller to log once:
 *   -EEXIST       the key file exists (it is never overwritten)
 *   -EMEDIUMTYPE  neither a file system nor LUKS2
 *   -ENOSPC       a partition too small for IMAGE_HEADER_ROOM
 *   -ENOKEY       the passphrase of a LUKS2 image opens no keyslot (or none was given)
 *   -EALREADY     the image already carries a cvmcrypt-provision token
 *   -EUCLEAN      a LUKS2 header the boot would refuse (the allow-list of luks-header.h)
 */

#define IMAGE_HEADER_ROOM (32u * 1024 * 1024) /* as `cryptsetup reencrypt --encrypt --reduce-device-size 32M` */
#define IMAGE_BUILD_KEY_SIZE 32

typedef struct ImagePrepareParams {
        const char *key_file;      /* receives the build-time key: created 0600, raw bytes */
        const char *unlock_secret; /* a LUKS2 image's passphrase; NULL for a plain file system */
        size_t unlock_size;
        uint16_t bank;             /* PCR bank and PCRs the first boot seals to, besides the gate PCR */
        uint32_t pcr_mask;
} ImagePrepareParams;

typedef struct ImagePrepareResult {
        bool encrypted;            /* a plain file system was encrypted (else the image was LUKS2) */
        bool resumed;              /* an interrupted encryption was finished */
        char fs_type[32];
        uint64_t grown;            /* bytes the image file grew by */
        uint32_t sector_size;
        int keyslot, token;
        char uuid[37];
} ImagePrepareResult;

int image_prepare(const char *image, const ImagePrepareParams *p, ImagePrepareResult *ret, char *why, size_t n);

/* Resumes a pending LUKS2 reencryption (or encryption) to its end, recovering a hot zone that a
 * crash cut off first; name is the active device for an online run, NULL offline. pass opens
 * slot_old and slot_new (CRYPT_ANY_SLOT: any). hotzone: bytes re-encrypted between two header
 * updates at most (0: libcryptsetup's choice). Shared with provision.c. Returns libcryptsetup's
 * negative errno. */
struct crypt_device;
typedef int (*ReencryptProgress)(uint64_t size, uint64_t offset, void *userdata);
int reencrypt_finish(struct crypt_device *cd, const char *name, const char *pass, size_t pass_size, int slot_old,
                     int slot_new, uint64_t hotzone, ReencryptProgress progress, void *userdata);
