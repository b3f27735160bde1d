/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Software PolicyPCR digests against known answers. The vectors are the ones systemd's
 * src/test/test-tpm2.c (TEST(calculate_policy_pcr)) checks, computed there independently of us. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "tap.h"
#include "tpm.h"

static void unhex(const char *s, uint8_t *out, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned v = 0;
                (void) sscanf(s + 2 * i, "%2x", &v);
                out[i] = (uint8_t) v;
        }
}

static int check_hex(const uint8_t *d, const char *hex) {
        uint8_t want[32];

        unhex(hex, want, sizeof(want));
        return memcmp(d, want, sizeof(want)) == 0;
}

static void test_kat_three(void) {
        TpmPcrValues v = { .bank = 0x000B, .mask = (1u << 4) | (1u << 7) | (1u << 8) };
        uint8_t d[32], with_pin[32], expect_pin[36];
        unsigned len = 0;

        unhex("368f85b3013041dfe203faaa364f00b07c5da7b1e5f1dbf2efb06fa6b9bd92de", v.value[4], 32);
        unhex("aa1154c9e0a774854ccbed4c8ce7e9b906b3d700a1a8db1772d0341a62dbe51b", v.value[7], 32);
        unhex("cfde439a2c06af3479ca6bdc60429b90553d65300c5cfcc40004a08c6b5ad81a", v.value[8], 32);
        CHECK(tpm_policy_digest(&v, false, d) == 0, "policy digest for sha256 PCRs 4,7,8");
        CHECK(check_hex(d, "76532a0e16f7e6bf6b02918c11f75d99d729fab0cc81d0df2c4284a2c4fe6e05"),
              "PCRs 4,7,8 match the known answer");

        /* PolicyAuthValue appends TPM_CC_PolicyAuthValue (0x16B) to the PolicyPCR digest. */
        memcpy(expect_pin, d, 32);
        memcpy(expect_pin + 32, "\x00\x00\x01\x6b", 4);
        CHECK(EVP_Digest(expect_pin, sizeof(expect_pin), expect_pin, &len, EVP_sha256(), NULL) == 1, "sha256");
        CHECK(tpm_policy_digest(&v, true, with_pin) == 0 && memcmp(with_pin, expect_pin, 32) == 0,
              "PIN adds PolicyAuthValue after PolicyPCR");

        /* Bits outside the mask are ignored. */
        memset(v.value[5], 0xaa, 32);
        CHECK(tpm_policy_digest(&v, false, d) == 0 &&
                      check_hex(d, "76532a0e16f7e6bf6b02918c11f75d99d729fab0cc81d0df2c4284a2c4fe6e05"),
              "values of unselected PCRs do not matter");
        v.value[7][31] ^= 1;
        CHECK(tpm_policy_digest(&v, false, d) == 0 &&
                      !check_hex(d, "76532a0e16f7e6bf6b02918c11f75d99d729fab0cc81d0df2c4284a2c4fe6e05"),
              "a changed selected PCR changes the digest");
}

static void test_kat_sixteen(void) {
        static const char *const hex[16] = {
                "2124793cbbe60c3a8637d3b84a5d054e87c351e1469a285acc04755e8b204dec",
                "bf7592f18adcfdc549fc0b94939f5069a24697f9cff4a0dca29014767b97559d",
                "4b00cff9dee3a364979b2dc241b34568a8ad49fcf2713df259e47dff8875feed",
                "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
                "368f85b3013041dfe203faaa364f00b07c5da7b1e5f1dbf2efb06fa6b9bd92de",
                "c97c40369691c8e4aa78fb3a52655cd193b780a838b8e23f5f476576919db5e5",
                "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
                "aa1154c9e0a774854ccbed4c8ce7e9b906b3d700a1a8db1772d0341a62dbe51b",
                "cfde439a2c06af3479ca6bdc60429b90553d65300c5cfcc40004a08c6b5ad81a",
                "9c2bac22ef5ec84fcdb71c3ebf776cba1247e5da980e5ee08e45666a2edf0b8b",
                "9885873f4d7348199ad286f8f2476d4f866940950f6f9fb9f945ed352dbdcbd2",
                "42400ab950d21aa79d12cc4fdef67d1087a39ad64900619831c0974dbae54e44",
                "767d064382e56ca1ad3bdcc6bc596112e6c2008b593d3570d24c2bfa64c4628c",
                "30c16133175959408c9745d8dafadef5daf4b39cb2be04df0d60089bd46d3cc4",
                "e3991b7ddd47be7e92726a832d6874c5349b52b789fa0db8b558c69fea29574e",
                "852dae3ecb992bdeb13d6002fefeeffdd90feca8b378d56681ef2c885d0e5137",
        };
        TpmPcrValues v = { .bank = 0x000B, .mask = 0xffff };
        uint8_t d[32];

        for (unsigned i = 0; i < 16; i++)
                unhex(hex[i], v.value[i], 32);
        CHECK(tpm_policy_digest(&v, false, d) == 0 &&
                      check_hex(d, "22be4f1674f792d6345cea9427701068f0e8d9f42755dcc0e927e545a68f9c13"),
              "PCRs 0-15 match the known answer");
}

static void test_errors(void) {
        TpmPcrValues v = { .bank = 0x000B, .mask = 0 };
        uint8_t d[32];

        CHECK(tpm_policy_digest(&v, false, d) == -EINVAL, "empty mask is rejected");
        v.mask = 1u << 24;
        CHECK(tpm_policy_digest(&v, false, d) == -EINVAL, "PCR 24 is rejected");
        v.mask = 1u << 7;
        v.bank = 0x0004;
        CHECK(tpm_policy_digest(&v, false, d) == -EOPNOTSUPP, "sha1 bank is not used for policies");
        v.bank = 0x000C;
        CHECK(tpm_policy_digest(&v, false, d) == 0, "sha384 bank is accepted");
}

static void test_banks(void) {
        uint16_t b = 0;

        CHECK(tpm_bank_from_name("sha256", &b) == 0 && b == 0x000B, "sha256 name");
        CHECK(tpm_bank_from_name("sha384", &b) == 0 && b == 0x000C, "sha384 name");
        CHECK(tpm_bank_from_name("SHA256", &b) == -EINVAL, "names are exact");
        CHECK(tpm_bank_from_name("md5", &b) == -EINVAL, "unknown name");
        CHECK(tpm_bank_digest_size(0x000B) == 32 && tpm_bank_digest_size(0x000C) == 48 &&
                      tpm_bank_digest_size(0x0004) == 20 && tpm_bank_digest_size(0x000D) == 64,
              "digest sizes");
        CHECK(tpm_bank_digest_size(0x0001) == 0 && tpm_bank_name(0x0001) == NULL, "unknown bank");
        CHECK_STREQ(tpm_bank_name(0x000C), "sha384", "bank name");
}

int main(void) {
        test_kat_three();
        test_kat_sixteen();
        test_errors();
        test_banks();
        return tap_done();
}
