/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/keyctl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "keyring.h"
#include "macro.h"
#include "secmem.h"

/* Permission bits of keyctl(2) (keyutils.h, not in the kernel's UAPI headers). */
#define KEY_POS_VIEW 0x01000000u
#define KEY_POS_READ 0x02000000u
#define KEY_POS_SEARCH 0x08000000u
#define KEY_USR_VIEW 0x00010000u
#define KEY_USR_READ 0x00020000u
#define KEY_USR_SEARCH 0x00080000u
#define KEY_PERM (KEY_POS_VIEW | KEY_POS_READ | KEY_POS_SEARCH | KEY_USR_VIEW | KEY_USR_READ | KEY_USR_SEARCH)

int keyring_put(const char *description, const void *data, size_t size, int32_t *ret_id) {
        long id;
        int r;

        /* An earlier key of that description cannot be updated (it has no write permission). */
        id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", description, 0);
        if (id >= 0) {
                r = keyring_drop((int32_t) id);
                if (r < 0)
                        return r;
        }
        id = syscall(SYS_add_key, "user", description, data, size, KEY_SPEC_USER_KEYRING);
        if (id < 0)
                return negative_errno();
        /* add_key gives the possessor write, link and setattr too: a key nobody changes, links elsewhere
         * or opens up. */
        if (syscall(SYS_keyctl, KEYCTL_SETPERM, (int32_t) id, KEY_PERM) < 0) {
                r = negative_errno();
                (void) keyring_drop((int32_t) id);
                return r;
        }
        *ret_id = (int32_t) id;
        return 0;
}

int keyring_get(const char *description, void *buf, size_t size, int32_t *ret_id) {
        long id, len;

        id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", description, 0);
        /* A dropped key stays in the keyring, revoked, until the kernel collects it. */
        if (id < 0)
                return errno == EKEYREVOKED ? -ENOKEY : negative_errno();
        len = syscall(SYS_keyctl, KEYCTL_READ, (int32_t) id, buf, size);
        if (len < 0)
                return negative_errno();
        if ((size_t) len != size) {
                secmem_wipe(buf, size);
                return -EBADMSG;
        }
        *ret_id = (int32_t) id;
        return 0;
}

int keyring_drop(int32_t id) {
        return syscall(SYS_keyctl, KEYCTL_INVALIDATE, id) < 0 ? negative_errno() : 0;
}
