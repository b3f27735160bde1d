/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "encoding.h"

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* c62 and c63 are the two characters that differ between base64 and base64url. */
static int b64_digit(char c, char c62, char c63) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == c62)
                return 62;
        if (c == c63)
                return 63;
        return -1;
}

static int b64_value(char c) {
        return b64_digit(c, '+', '/');
}

int base64url_decode_strict(const char *s, size_t len, uint8_t *out, size_t max, size_t *ret_size) {
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t n = 0;

        if (len % 4 == 1)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int v = b64_digit(s[i], '-', '_');
                if (v < 0)
                        return -EINVAL;
                acc = acc << 6 | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        if (n >= max)
                                return -E2BIG;
                        out[n++] = (uint8_t) (acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        if (acc != 0)
                return -EINVAL;
        *ret_size = n;
        return 0;
}

int base64_decode_strict(const char *s, size_t len, uint8_t *out, size_t max, size_t *ret_size) {
        size_t pad = 0, n;

        if (len % 4 != 0)
                return -EINVAL;
        if (len > 0 && s[len - 1] == '=')
                pad++;
        if (len > 1 && s[len - 2] == '=')
                pad++;
        n = len / 4 * 3 - pad;
        if (n > max)
                return -E2BIG;

        for (size_t i = 0, o = 0; i < len; i += 4) {
                int v[4];
                uint32_t group = 0;
                size_t chars = i + 4 == len ? 4 - pad : 4;

                for (size_t k = 0; k < 4; k++) {
                        v[k] = k < chars ? b64_value(s[i + k]) : 0;
                        if (v[k] < 0)
                                return -EINVAL; /* '=' in the middle, whitespace, other alphabets */
                        group = group << 6 | (uint32_t) v[k];
                }
                /* The bits that padding leaves over must be zero: one encoding per value. */
                if ((chars == 2 && (group & 0xffff)) || (chars == 3 && (group & 0xff)))
                        return -EINVAL;
                out[o++] = (uint8_t) (group >> 16);
                if (chars > 2)
                        out[o++] = (uint8_t) (group >> 8);
                if (chars > 3)
                        out[o++] = (uint8_t) group;
        }
        *ret_size = n;
        return 0;
}

void base64_encode(const uint8_t *p, size_t n, char *out) {
        size_t o = 0;

        for (size_t i = 0; i < n; i += 3) {
                uint32_t group = (uint32_t) p[i] << 16;

                if (i + 1 < n)
                        group |= (uint32_t) p[i + 1] << 8;
                if (i + 2 < n)
                        group |= p[i + 2];
                out[o++] = b64_alphabet[group >> 18 & 63];
                out[o++] = b64_alphabet[group >> 12 & 63];
                out[o++] = i + 1 < n ? b64_alphabet[group >> 6 & 63] : '=';
                out[o++] = i + 2 < n ? b64_alphabet[group & 63] : '=';
        }
        out[o] = '\0';
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int hex_decode_exact(const char *s, size_t len, uint8_t *out, size_t size) {
        if (len != 2 * size)
                return -EINVAL;
        for (size_t i = 0; i < size; i++) {
                int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

void hex_encode(const uint8_t *p, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[p[i] >> 4];
                out[2 * i + 1] = digits[p[i] & 15];
        }
        out[2 * n] = '\0';
}
