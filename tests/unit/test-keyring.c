/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hand-over key: in root's user keyring (here the test user's), root-only permissions, read back
 * only at its exact size, and gone once dropped. */
#include <errno.h>
#include <linux/keyctl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "keyring.h"
#include "tap.h"

/* "type;uid;gid;perm;description" */
static int describe(int32_t id, char *buf, size_t n) {
        long len = syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, buf, n);

        return len < 0 || (size_t) len > n ? -1 : 0;
}

int main(void) {
        char desc[64], info[256], expect[256], buf[32], big[64];
        const char secret[32] = "0123456789abcdef0123456789abcdef";
        int32_t id = 0, id2 = 0;
        int r;

        (void) snprintf(desc, sizeof(desc), "cvmcrypt-test:%ld", (long) getpid());
        r = keyring_put(desc, secret, sizeof(secret), &id);
        CHECK(r == 0 && id > 0, "key added to the user keyring (%s)", strerror(-r));
        (void) snprintf(expect, sizeof(expect), "user;%u;%u;0b0b0000;%s", getuid(), getgid(), desc);
        CHECK(describe(id, info, sizeof(info)) == 0 && strcmp(info, expect) == 0,
              "possessor and owner may view, read and search; nobody may write, link or setattr; no group or other (%s)", info);
        r = keyring_get(desc, buf, sizeof(buf), &id2);
        CHECK(r == 0 && id2 == id && memcmp(buf, secret, sizeof(buf)) == 0, "read back by description");
        CHECK(keyring_get(desc, buf, 16, &id2) == -EBADMSG, "a buffer of another size is refused");
        CHECK(keyring_get(desc, big, sizeof(big), &id2) == -EBADMSG, "a larger buffer is refused too");
        r = keyring_put(desc, secret, 16, &id2);
        CHECK(r == 0 && id2 != id && keyring_get(desc, buf, 16, &id) == 0 && id == id2,
              "a second put replaces the key (%s)", strerror(-r));
        CHECK(keyring_drop(id) == 0, "dropped");
        CHECK(keyring_get(desc, buf, 16, &id2) == -ENOKEY, "gone once dropped");
        CHECK(keyring_get("cvmcrypt-test:none", buf, 16, &id2) == -ENOKEY, "an unknown description: -ENOKEY");
        return tap_done();
}
