/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The LUKS2 header is host-controlled input: the host owns the disk and can rewrite it, e.g. to
 * cipher_null, so that any key "unlocks" and the guest writes plaintext. Before any secret is
 * used we read the header area once into a sealed memfd, check that copy against an allow-list,
 * and hand libcryptsetup the memfd as a detached header, so the checked bytes are the bytes used:
 *
 *     _cleanup_(luks_header_done) LuksHeader h = LUKS_HEADER_NULL;
 *     r = luks_header_snapshot(device, LUKS_SNAPSHOT_KEYSLOTS, &h, why, sizeof(why));
 *     r = crypt_init_data_device(&cd, h.path, device);
 *     r = crypt_load(cd, CRYPT_LUKS2, NULL);
 *
 * Errors (nothing is logged above debug level; `why` names the exact problem):
 *   -EMEDIUMTYPE  no LUKS2 header at offset 0 (other signature, LUKS1)
 *   -EBADMSG      a malformed header: bad checksum, JSON syntax, copies that differ, truncation
 *   -EOPNOTSUPP   a well-formed header outside the allow-list (cipher_null, reencryption, ...)
 *   -EFBIG        the header area is larger than LUKS_HEADER_AREA_MAX
 *   other         I/O errors from reading the device or writing the memfd
 */

#define LUKS_HEADER_BIN_SIZE 4096u
#define LUKS_HEADER_SIZE_MIN (16u * 1024)
#define LUKS_HEADER_SIZE_MAX (4u * 1024 * 1024)
#define LUKS_KEYSLOTS_SIZE_MAX (128u * 1024 * 1024)
#define LUKS_HEADER_AREA_MAX (2 * (uint64_t) LUKS_HEADER_SIZE_MAX + LUKS_KEYSLOTS_SIZE_MAX)
#define LUKS_SLOTS_MAX 32    /* keyslots and tokens: ids 0..31, so a uint32_t mask holds them */
#define LUKS_WHY_MAX 256     /* enough for every message this module writes */

typedef struct LuksHeaderInfo {
        char uuid[37];              /* as in the header: 8-4-4-4-12 hex digits */
        char label[48];
        char subsystem[48];
        uint64_t seqid;
        uint64_t hdr_size;          /* one copy: binary header + JSON area */
        uint64_t keyslots_size;
        uint64_t area_size;         /* 2 * hdr_size + keyslots_size: all libcryptsetup reads as metadata */
        uint64_t data_offset;       /* segment 0, bytes from the device start; >= area_size */
        char cipher[32];            /* segment 0, e.g. "aes-xts-plain64" */
        uint32_t sector_size;
        uint32_t volume_key_size;   /* bytes; 0 when there is no keyslot to tell */
        uint32_t keyslots;          /* bit n set: keyslot n exists */
        uint64_t keyslot_offset[LUKS_SLOTS_MAX]; /* area of keyslot n, bytes from the device start */
        uint64_t keyslot_size[LUKS_SLOTS_MAX];
        uint32_t tokens;            /* bit n set: token n exists */
} LuksHeaderInfo;

/* Checks the raw header area, starting at device offset 0: both binary headers and checksums, the
 * JSON metadata, and the allow-list. size must cover both header copies (2 * hdr_size); the keyslot
 * area beyond them is not looked at. Pure: no I/O, no allocation that outlives the call. On failure
 * why (if why_size > 0) holds a one-line reason and ret is untouched. */
int luks_header_validate(const uint8_t *buf, size_t size, LuksHeaderInfo *ret, char *why, size_t why_size);

/* A header write that was cut short (power loss, SIGKILL: libcryptsetup writes the primary copy,
 * then the secondary) leaves one copy damaged, or two valid copies with different seqids.
 * libcryptsetup then uses the valid copy, or the newer of two valid ones, and repairs the other.
 * This picks the same copy and rebuilds the other from it in buf, so that validation and
 * libcryptsetup both see only the chosen header and an interrupted enroll or reseal cannot lock a
 * volume out of an unattended boot. Returns 1 if it rebuilt a copy (why says which), 0 if there
 * was nothing to reconcile (identical seqids, or no valid copy: luks_header_validate() says why),
 * or a negative errno. luks_header_snapshot() calls it before validating. */
int luks_header_reconcile(uint8_t *buf, size_t size, char *why, size_t why_size);

typedef struct LuksHeader {
        int fd;                     /* sealed memfd holding the checked header area, or -1 */
        char path[32];              /* "/proc/self/fd/N", for crypt_init_data_device() */
        LuksHeaderInfo info;
} LuksHeader;

#define LUKS_HEADER_NULL ((LuksHeader){ .fd = -1 })

typedef enum LuksSnapshotFlags {
        LUKS_SNAPSHOT_HEADERS = 0,      /* the two header copies only: enough to check a volume key */
        LUKS_SNAPSHOT_KEYSLOTS = 1 << 0, /* also every keyslot area: needed to open a keyslot */
        /* Also the states our own first-boot provisioning (provision.c) passes through, and only
         * with a cvmcrypt-provision token in the header: keyslots of a second (new) volume key not
         * yet bound to a segment, and a pending re-key ("online-reencrypt" requirement, one
         * "reencrypt" keyslot in mode reencrypt with checksum resilience, its extra segments and
         * digests), every segment still an allowed cipher. Never encryption or decryption: no
         * plaintext segment. Unlock paths never pass it. */
        LUKS_SNAPSHOT_PROVISION = 1 << 1,
} LuksSnapshotFlags;

/* Provisioning only. libcryptsetup's last step of a re-key destroys the old key's keyslots one by
 * one, then the reencrypt keyslot, the backup segments and last the requirement, each a header
 * write; a crash in between leaves a re-key it cannot load again (the old key is gone), though all
 * data is under the new key. On such a header (checked with LUKS_SNAPSHOT_PROVISION: one data
 * segment, whole, under the digest of the backup-final segment) this writes what that step would
 * have left: a new generation of both copies with the new key's digest and keyslots only. Returns
 * 1 if it did, 0 if the header is not at that point, or a negative errno (why set). */
int luks_header_finish_rekey(const char *device, char *why, size_t why_size);

/* luks_header_validate() with LUKS_SNAPSHOT_PROVISION honoured in flags (the others are ignored). */
int luks_header_validate_flags(const uint8_t *buf, size_t size, LuksSnapshotFlags flags, LuksHeaderInfo *ret,
                               char *why, size_t why_size);

/* Reads the header area of device (a block device or an image file) once, validates it, and keeps
 * the validated bytes in a memfd sealed against writes, growth and shrinking. Keyslot areas not
 * copied read as zeros. Needs /proc. */
int luks_header_snapshot(const char *device, LuksSnapshotFlags flags, LuksHeader *ret, char *why, size_t why_size);

/* Closes the memfd; safe on LUKS_HEADER_NULL and twice. Usable as _cleanup_(luks_header_done). */
void luks_header_done(LuksHeader *h);
