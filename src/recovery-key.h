/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* A recovery key is 256 random bits written in modhex (the alphabet "cbdefghijklnrtuv", which types
 * the same on most keyboard layouts), as 8 groups of 8 characters separated by dashes. The keyslot
 * passphrase is the 64 characters without dashes, so whatever separators a person types, the
 * normalized form opens the slot. */

#define RECOVERY_KEY_BYTES 32
#define RECOVERY_KEY_CHARS (2 * RECOVERY_KEY_BYTES)
#define RECOVERY_KEY_FORMATTED_LEN (RECOVERY_KEY_CHARS + RECOVERY_KEY_CHARS / 8 - 1)

/* New key from getrandom(). *ret_formatted (dashes) and *ret_passphrase (none) are secmem buffers. */
int recovery_key_generate(char **ret_formatted, char **ret_passphrase);

/* Typed or stored form to the passphrase: ignores dashes, spaces and a trailing newline, folds case.
 * -EINVAL unless exactly 64 modhex characters remain. *ret is a secmem buffer. */
int recovery_key_normalize(const char *typed, size_t len, char **ret);
