/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Strict decoders for text that arrives from LUKS2 headers and tokens (host-controlled input).
 * They accept exactly one spelling of each value, so a header can't smuggle data into padding
 * bits or whitespace that a second parser would read differently. */

/* Standard alphabet (RFC 4648 section 4), '=' padding required, no whitespace, unused bits of the
 * last group must be zero. Writes at most max bytes to out. Returns 0, -EINVAL (malformed) or
 * -E2BIG (decodes to more than max bytes). */
int base64_decode_strict(const char *s, size_t len, uint8_t *out, size_t max, size_t *ret_size);

/* Length of the encoding of n bytes, without the terminating NUL. */
static inline size_t base64_encoded_len(size_t n) {
        return (n + 2) / 3 * 4;
}
/* Writes base64_encoded_len(n) characters and a NUL to out. */
void base64_encode(const uint8_t *p, size_t n, char *out);

/* base64url without padding (RFC 7515 appendix C), as in JWKs; the unused bits of the last
 * character must be zero. Returns 0, -EINVAL or -E2BIG. */
int base64url_decode_strict(const char *s, size_t len, uint8_t *out, size_t max, size_t *ret_size);

/* Exactly 2 * size hex digits (either case) into size bytes. Returns 0 or -EINVAL. */
int hex_decode_exact(const char *s, size_t len, uint8_t *out, size_t size);

/* Writes 2 * n lowercase hex digits and a NUL to out. */
void hex_encode(const uint8_t *p, size_t n, char *out);
