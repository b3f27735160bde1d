/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A secret handed from the initrd to the real root: a "user" key in root's user keyring (@u), which
 * lives as long as the user namespace, so across switch-root, and never on a disk. Only root (the
 * key's owner and possessor) can view, read or search it: no group or other permission, and no
 * write, link or setattr, so it cannot be changed in place. Functions return 0 or a negative errno:
 *   -ENOKEY    no such key
 *   -EBADMSG   the key holds a payload of another size
 *   -ENOSYS    the kernel has no keyrings */

#define KEYRING_DESCRIPTION_MAX 128

/* Adds the key (replacing one of the same description) and returns its serial. */
int keyring_put(const char *description, const void *data, size_t size, int32_t *ret_id);
/* Reads the key of that description into buf, which must be exactly its size. */
int keyring_get(const char *description, void *buf, size_t size, int32_t *ret_id);
/* Invalidates the key: it leaves every keyring at once, and the kernel wipes it. */
int keyring_drop(int32_t id);
