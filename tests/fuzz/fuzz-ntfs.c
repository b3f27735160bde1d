/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NTFS root-directory check of the temp disk guard: the input is the start of a volume (boot
 * sector, $MFT, index blocks); the volume is 4 MiB and reads past the input return zeros. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tempdisk.h"

#define VOLUME_SIZE (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Input {
        const uint8_t *data;
        size_t size;
} Input;

static int read_input(void *userdata, uint64_t offset, void *buf, size_t n) {
        const Input *in = userdata;

        if (offset > VOLUME_SIZE || n > VOLUME_SIZE - offset)
                return -ERANGE;
        memset(buf, 0, n);
        if (offset < in->size)
                memcpy(buf, in->data + offset, n < in->size - offset ? n : in->size - offset);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Input in = { data, size };
        char why[256];

        (void) tempdisk_ntfs_check_root(read_input, &in, VOLUME_SIZE, why, sizeof(why));
        return 0;
}
