/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The escrow a first boot wrote, as `recover --escrow` reads it: PEM or DER CMS, then decryption with
 * a private key (an RSA key made once per process; a seed encrypted to another key still exercises
 * the recipient matching and the padding checks). */
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stddef.h>
#include <stdint.h>

#include "provision.h"
#include "secmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static EVP_PKEY *pkey;
        char why[256], *secret = NULL;
        size_t secret_size = 0;

        if (!pkey)
                pkey = EVP_RSA_gen(2048);
        if (escrow_decode(data, size, NULL, &secret, &secret_size, why, sizeof(why)) == 0 && pkey &&
            escrow_decode(data, size, pkey, &secret, &secret_size, why, sizeof(why)) == 0)
                secmem_free(secret);
        return 0;
}
