/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helpers that rewrite LUKS2 headers the way libcryptsetup writes them, so a mutated header
 * differs from a genuine one only where the test says (used by the unit test and the fuzz target).
 * buf holds at least both header copies, starting at device offset 0. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#define LUKS2_FIXTURE_BIN 4096
#define LUKS2_FIXTURE_CSUM 448

static inline uint64_t luks2_fixture_hdr_size(const uint8_t *buf) {
        uint64_t v = 0;

        for (size_t i = 8; i < 16; i++)
                v = v << 8 | buf[i];
        return v;
}

/* SHA-256 over the binary header with its checksum zeroed, then the whole JSON area. */
static inline int luks2_fixture_checksum_copy(uint8_t *copy, uint64_t hdr_size) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned len = 0;
        int ok;

        if (!md)
                return -ENOMEM;
        memset(copy + LUKS2_FIXTURE_CSUM, 0, 64);
        ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(md, copy, hdr_size) == 1 &&
             EVP_DigestFinal_ex(md, copy + LUKS2_FIXTURE_CSUM, &len) == 1;
        EVP_MD_CTX_free(md);
        return ok ? 0 : -EIO;
}

/* Recomputes the checksums of both copies (after an edit of the binary fields). */
static inline int luks2_fixture_rechecksum(uint8_t *buf) {
        uint64_t hdr_size = luks2_fixture_hdr_size(buf);
        int r = luks2_fixture_checksum_copy(buf, hdr_size);

        return r < 0 ? r : luks2_fixture_checksum_copy(buf + hdr_size, hdr_size);
}

/* Writes json into the JSON area of one copy (0 primary, 1 secondary), NUL-padded, and fixes that
 * copy's checksum. -E2BIG if it doesn't fit with its terminating NUL. */
static inline int luks2_fixture_set_json_copy(uint8_t *buf, int which, const char *json) {
        uint64_t hdr_size = luks2_fixture_hdr_size(buf);
        uint8_t *copy = buf + (which ? hdr_size : 0);
        size_t len = strlen(json), area = hdr_size - LUKS2_FIXTURE_BIN;

        if (len >= area)
                return -E2BIG;
        memset(copy + LUKS2_FIXTURE_BIN, 0, area);
        memcpy(copy + LUKS2_FIXTURE_BIN, json, len);
        return luks2_fixture_checksum_copy(copy, hdr_size);
}

static inline int luks2_fixture_set_json(uint8_t *buf, const char *json) {
        int r = luks2_fixture_set_json_copy(buf, 0, json);

        return r < 0 ? r : luks2_fixture_set_json_copy(buf, 1, json);
}
