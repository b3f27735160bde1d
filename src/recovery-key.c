/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "macro.h"
#include "recovery-key.h"
#include "secmem.h"

static const char modhex[] = "cbdefghijklnrtuv";

static int fill_random(void *p, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = getrandom((char *) p + done, n - done, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                done += (size_t) k;
        }
        return 0;
}

int recovery_key_generate(char **ret_formatted, char **ret_passphrase) {
        _cleanup_secmem_ unsigned char *raw = secmem_alloc(RECOVERY_KEY_BYTES);
        _cleanup_secmem_ char *formatted = secmem_alloc(RECOVERY_KEY_FORMATTED_LEN + 1);
        _cleanup_secmem_ char *pass = secmem_alloc(RECOVERY_KEY_CHARS + 1);
        size_t j = 0;
        int r;

        if (!raw || !formatted || !pass)
                return -ENOMEM;
        r = fill_random(raw, RECOVERY_KEY_BYTES);
        if (r < 0)
                return r;
        for (size_t i = 0; i < RECOVERY_KEY_BYTES; i++) {
                pass[2 * i] = modhex[raw[i] >> 4];
                pass[2 * i + 1] = modhex[raw[i] & 0xf];
        }
        for (size_t i = 0; i < RECOVERY_KEY_CHARS; i++) {
                if (i > 0 && i % 8 == 0)
                        formatted[j++] = '-';
                formatted[j++] = pass[i];
        }
        *ret_formatted = TAKE_PTR(formatted);
        *ret_passphrase = TAKE_PTR(pass);
        return 0;
}

int recovery_key_normalize(const char *typed, size_t len, char **ret) {
        _cleanup_secmem_ char *pass = secmem_alloc(RECOVERY_KEY_CHARS + 1);
        size_t n = 0;

        if (!pass)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                char c = (char) tolower((unsigned char) typed[i]);

                if (c == '-' || c == ' ' || (c == '\n' && i == len - 1))
                        continue;
                if (!c || !strchr(modhex, c) || n >= RECOVERY_KEY_CHARS)
                        return -EINVAL;
                pass[n++] = c;
        }
        if (n != RECOVERY_KEY_CHARS)
                return -EINVAL;
        *ret = TAKE_PTR(pass);
        return 0;
}
