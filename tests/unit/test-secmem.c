/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secmem.h"
#include "tap.h"

/* The VmFlags line of the mapping that contains p, from /proc/self/smaps. */
static int vmflags_of(const void *p, char *out, size_t n) {
        FILE *f = fopen("/proc/self/smaps", "re");
        char line[512];
        int in = 0;

        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;
                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
                        in = (uintptr_t) p >= lo && (uintptr_t) p < hi;
                else if (in && strncmp(line, "VmFlags:", 8) == 0) {
                        snprintf(out, n, "%s", line + 8);
                        fclose(f);
                        return 0;
                }
        }
        fclose(f);
        return -ENOENT;
}

static void test_alloc(void) {
        uint8_t *p = secmem_alloc(100);
        struct rlimit rl;
        char flags[512] = "";
        int zero = 1;

        CHECK(p != NULL, "allocate 100 bytes");
        for (size_t i = 0; i < 100; i++)
                zero &= p[i] == 0;
        CHECK(zero, "fresh buffer is zeroed");
        CHECK(secmem_size(p) == 100, "size is recorded");
        CHECK(((uintptr_t) p & 63) == 0, "buffer is 64-byte aligned");
        CHECK(secmem_live_count() == 1, "one live buffer");
        CHECK(prctl(PR_GET_DUMPABLE) == 0, "process is not dumpable once a secret exists");
        CHECK(getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur == 0 && rl.rlim_max == 0, "core size limit is 0");
        CHECK(vmflags_of(p, flags, sizeof(flags)) == 0, "mapping found in smaps");
        CHECK(strstr(flags, " lo") != NULL, "mapping is locked (lo): %s", flags);
        CHECK(strstr(flags, " dd") != NULL, "mapping is excluded from core dumps (dd)");
        CHECK(strstr(flags, " wf") != NULL, "mapping is wiped in forked children (wf)");
        p = secmem_free(p);
        CHECK(p == NULL && secmem_live_count() == 0, "free returns NULL and forgets the buffer");
        CHECK(secmem_free(NULL) == NULL, "free(NULL) is a no-op");
}

static void test_limits(void) {
        errno = 0;
        CHECK(secmem_alloc(0) == NULL && errno == EINVAL, "zero-size allocation refused");
        errno = 0;
        CHECK(secmem_alloc(SIZE_MAX) == NULL && errno == EINVAL, "huge allocation refused");
}

static void test_fork_wipe(void) {
        uint8_t *p = secmem_alloc(32);
        int status = -1;
        pid_t pid;

        memset(p, 0xA5, 32);
        pid = fork();
        if (pid == 0)
                _exit(p[0] == 0 && p[31] == 0 ? 0 : 1);
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child process sees the secret wiped");
        CHECK(p[0] == 0xA5, "parent keeps the secret");
        secmem_free(p);
}

static void test_leak_detection(void) {
        static const uint8_t key[16] = { 0x3c, 0x91, 0x07, 0xfe, 0x22, 0x5a, 0xd0, 0x11,
                                         0x8b, 0x64, 0x19, 0xc3, 0x7e, 0x02, 0xaa, 0x55 };
        uint8_t *s = secmem_alloc(64); /* only partly used: the zero tail must not match */
        char text[128];

        memcpy(s, key, sizeof(key));
        memcpy(text, "raw:", 4);
        memcpy(text + 4, key + 3, 8);
        CHECK(secmem_text_leaks(text, 12), "raw bytes of a secret are detected");
        CHECK(secmem_text_leaks("x fe225ad0118b6419 y", 20), "lower-case hex of a secret is detected");
        CHECK(secmem_text_leaks("FE225AD0118B6419", 16), "upper-case hex of a secret is detected");
        CHECK(!secmem_text_leaks("fe225ad0118b64", 14), "a window shorter than 8 bytes is not a leak");
        CHECK(!secmem_text_leaks("PCR 7: 0000000000000000000000000000000000000000", 47),
              "zero padding of a secret buffer does not match an all-zero PCR value");
        secmem_free(s);
        CHECK(!secmem_text_leaks("fe225ad0118b6419", 16), "freed secrets are forgotten");
}

int main(void) {
        test_limits();
        test_alloc();
        test_fork_wipe();
        test_leak_detection();
        return tap_done();
}
