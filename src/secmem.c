/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "secmem.h"

#define SECMEM_MAGIC 0x5345434d454d3031ULL /* "SECMEM01" */
#define LEAK_WINDOW 8

typedef struct SecmemHeader {
        uint64_t magic;
        size_t size;     /* usable bytes */
        size_t map_size; /* whole mapping, header included */
        struct SecmemHeader *prev, *next;
} SecmemHeader;

/* Header padded so the user area keeps 64-byte alignment. */
#define HEADER_SIZE ((sizeof(SecmemHeader) + 63) & ~(size_t) 63)

static SecmemHeader *live;
static bool process_protected;

int secmem_protect_process(void) {
        struct rlimit rl = { 0, 0 };

        if (process_protected)
                return 0;
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return -errno;
        if (setrlimit(RLIMIT_CORE, &rl) < 0)
                return -errno;
        process_protected = true;
        return 0;
}

void secmem_wipe(void *p, size_t n) {
        if (p && n > 0)
                explicit_bzero(p, n);
}

static SecmemHeader *header_of(const void *p) {
        SecmemHeader *h = (SecmemHeader *) (void *) ((uint8_t *) (uintptr_t) p - HEADER_SIZE);

        return h->magic == SECMEM_MAGIC ? h : NULL;
}

void *secmem_alloc(size_t size) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE), map_size;
        SecmemHeader *h;
        int r;

        if (size == 0 || size > 16 * 1024 * 1024) {
                errno = EINVAL;
                return NULL;
        }
        r = secmem_protect_process();
        if (r < 0) {
                errno = -r;
                return NULL;
        }
        map_size = (HEADER_SIZE + size + page - 1) / page * page;
        h = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (h == MAP_FAILED)
                return NULL;
        /* The raw syscall: sanitizer runtimes turn mlock() into a no-op. */
        if (syscall(SYS_mlock, h, map_size) < 0 || madvise(h, map_size, MADV_DONTDUMP) < 0 ||
            madvise(h, map_size, MADV_WIPEONFORK) < 0) {
                int saved = errno;
                (void) munmap(h, map_size);
                errno = saved;
                return NULL;
        }
        *h = (SecmemHeader){ .magic = SECMEM_MAGIC, .size = size, .map_size = map_size, .next = live };
        if (live)
                live->prev = h;
        live = h;
        return (uint8_t *) h + HEADER_SIZE;
}

void *secmem_free(void *p) {
        SecmemHeader *h;
        size_t map_size;

        if (!p)
                return NULL;
        h = header_of(p);
        if (!h)
                abort(); /* not ours: a programming error, never data-dependent */
        if (h->prev)
                h->prev->next = h->next;
        else
                live = h->next;
        if (h->next)
                h->next->prev = h->prev;
        map_size = h->map_size;
        explicit_bzero(h, map_size);
        (void) syscall(SYS_munlock, h, map_size);
        (void) munmap(h, map_size);
        return NULL;
}

size_t secmem_size(const void *p) {
        const SecmemHeader *h = p ? header_of(p) : NULL;

        return h ? h->size : 0;
}

size_t secmem_live_count(void) {
        size_t n = 0;

        for (const SecmemHeader *h = live; h; h = h->next)
                n++;
        return n;
}

static const void *memchr_inv(const uint8_t *p, uint8_t c, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != c)
                        return p + i;
        return NULL;
}

static bool hex_window_in(const char *text, size_t len, const uint8_t *s, bool upper) {
        const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
        char hex[LEAK_WINDOW * 2];

        for (size_t i = 0; i < LEAK_WINDOW; i++) {
                hex[2 * i] = digits[s[i] >> 4];
                hex[2 * i + 1] = digits[s[i] & 0xf];
        }
        return memmem(text, len, hex, sizeof(hex)) != NULL;
}

static bool secret_in_text(const uint8_t *secret, size_t n, const char *text, size_t len) {
        if (n < LEAK_WINDOW)
                return false;
        for (size_t i = 0; i + LEAK_WINDOW <= n; i++) {
                const uint8_t *w = secret + i;
                /* A run of one repeated byte is padding or an unused tail, not key material, and
                 * would match innocent text such as an all-zero PCR value. */
                if (memchr_inv(w, w[0], LEAK_WINDOW) == NULL)
                        continue;
                if (memmem(text, len, w, LEAK_WINDOW) || hex_window_in(text, len, w, false) ||
                    hex_window_in(text, len, w, true))
                        return true;
        }
        return false;
}

bool secmem_text_leaks(const char *text, size_t len) {
        for (const SecmemHeader *h = live; h; h = h->next) {
                const uint8_t *data = (const uint8_t *) h + HEADER_SIZE;
                if (secret_in_text(data, h->size, text, len))
                        return true;
        }
        return false;
}
