/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Secret buffers: page-backed, mlock'ed, excluded from core dumps and from forked children,
 * zero-filled on allocation and wiped with explicit_bzero before they are released. */

/* Turns off core dumps and ptrace-style access for this process. Idempotent; secmem_alloc()
 * calls it before handing out the first buffer. */
int secmem_protect_process(void);

/* Returns NULL with errno set on failure (including when the pages cannot be locked). */
void *secmem_alloc(size_t size);
void *secmem_free(void *p);
size_t secmem_size(const void *p);
static inline void secmem_freep(void *pp) {
        secmem_free(*(void **) pp);
}
#define _cleanup_secmem_ __attribute__((cleanup(secmem_freep)))

/* Wipes a stack or heap buffer that held a secret. */
void secmem_wipe(void *p, size_t n);

/* True if text contains 8 or more consecutive bytes of any live secret buffer, raw or as hex.
 * The logger uses it as a last line of defence. */
bool secmem_text_leaks(const char *text, size_t len);

/* Number of live buffers, for tests and leak checks. */
size_t secmem_live_count(void);
