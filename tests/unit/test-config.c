/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

typedef struct Case {
        const char *text;
        const char *expect; /* substring of the error message; NULL: must succeed */
} Case;

static const Case file_cases[] = {
        { "# comment\n\n  tpm = swtpm:path=/tmp/s  \n", NULL },
        { "tpm\n", "cfg:1: expected KEY=VALUE" },
        { "\n\nTPM=x\n", "cfg:3: 'TPM' is not a valid key" },
        { "=x\n", "cfg:1: '' is not a valid key" },
        { "thiskeyiswaytoolongtobeanykeyweknow=1\n", "is not a valid key" },
        { "colour=blue\n", "cfg:1: unknown key 'colour'" },
        { "gate-pcr=15\ngate-pcr=14\n", "cfg:2: 'gate-pcr' is set twice" },
        { "policy=\n", "cfg:1: 'policy' has an empty value" },
        { "tpm=a\x01" "b\n", "cfg:1: control character 0x01" },
        { "tpm=ab\r\n", "cfg:1: control character 0x0d" },
        { "tpm=:foo\n", "is not a TCTI" },
        { "tpm=Device:/dev/tpm0\n", "is not a TCTI name" },
        { "tpm=device:/dev/tpm rm0\n", "whitespace or control" },
        { "tpm-timeout=abc\n", "not a number of seconds" },
        { "tpm-timeout=601\n", "not a number of seconds" },
        { "tpm-timeout=-1\n", "not a number of seconds" },
        { "tpm-timeout=010\n", "not a number of seconds" },
        { "tpm-timeout=0x10\n", "not a number of seconds" },
        { "tpm-timeout=0\n", NULL },
        { "device-timeout=600\n", NULL },
        { "device-timeout=601\n", "not a number of seconds between 0 and 600" },
        { "device-timeout=1s\n", "not a number of seconds between 0 and 600" },
        { "gate-pcr=7\n", "is not a PCR between 8 and 15" },
        { "gate-pcr=16\n", "is not a PCR between 8 and 15" },
        { "gate-pcr=23\n", "is not a PCR between 8 and 15" },
        { "gate-pcr=99999999999\n", "is not a PCR between 8 and 15" },
        { "gate-pcr=8\n", NULL },
        { "anchors=relative/dir\n", "not a clean absolute path" },
        { "anchors=/usr/../etc\n", "not a clean absolute path" },
        { "anchors=/usr//share\n", "not a clean absolute path" },
        { "anchors=/usr/share/..\n", "not a clean absolute path" },
        { "policy=/etc/./policy.json\n", "not a clean absolute path" },
        { "event-log=/run/log x\n", "not a clean absolute path" },
        { "tempdisk-mount=mnt\n", "not a clean absolute path" },
        { "tempdisk=/dev/sdb\n", "neither auto, 0, nor a /dev/disk/by-* path" },
        { "tempdisk=maybe\n", "neither auto, 0, nor a /dev/disk/by-* path" },
        { "tempdisk=/dev/disk/by-id/../sda\n", "neither auto, 0, nor a /dev/disk/by-* path" },
        { "tempdisk=/dev/disk/by-id/nvme-Microsoft_NVMe_Direct_Disk_1\n", NULL },
        { "tempdisk-mode=first\ntempdisk-fs=xfs\ntempdisk-crypt=plain\ntempdisk-swap=4G\n", NULL },
        { "tempdisk-mode=all\n", "'all' is neither first nor each" },
        { "tempdisk-mode=Each\n", "neither first nor each" },
        { "tempdisk-fs=btrfs\n", "'btrfs' is neither ext4 nor xfs" },
        { "tempdisk-crypt=luks1\n", "'luks1' is neither luks2 nor plain" },
        { "tempdisk-swap=0\n", NULL },
        { "tempdisk-swap=1M\n", NULL },
        { "tempdisk-swap=1T\n", NULL },
        { "tempdisk-swap=2048\n", "is not 0 or a size such as 512M or 4G" },
        { "tempdisk-swap=2g\n", "is not 0 or a size such as 512M or 4G" },
        { "tempdisk-swap=02G\n", "is not 0 or a size such as 512M or 4G" },
        { "tempdisk-swap=-1G\n", "is not 0 or a size such as 512M or 4G" },
        { "tempdisk-swap=G\n", "is not 0 or a size such as 512M or 4G" },
        { "tempdisk-swap=1.5G\n", "is not 0 or a size such as 512M or 4G" },
        { "tempdisk-swap=1000000G\n", "is not 0 or a size such as 512M or 4G" },
        { "tempdisk-swap=512K\n", "not between 1M and 1T" },
        { "tempdisk-swap=1025K\n", "not between 1M and 1T in steps of 4K" },
        { "tempdisk-swap=2T\n", "not between 1M and 1T" },
        { "tempdisk-fs=ext4\ntempdisk-fs=xfs\n", "cfg:2: 'tempdisk-fs' is set twice" },
        { "volume=sda2\n", "neither a /dev path nor UUID=" },
        { "volume=UUID=1234\n", "neither a /dev path nor UUID=" },
        { "volume=/dev/vda2 bad/name\n", "volume name 'bad/name' is invalid" },
        { "volume=/dev/vda2 -x\n", "volume name '-x' is invalid" },
        { "volume=/dev/vda2\nvolume=/dev/vda2\n", "cfg:2: bad value for 'volume': volume '/dev/vda2' is listed twice" },
        { "volume=/dev/vda2 root\nvolume=/dev/vda3 root\n", "volume name 'root' is used twice" },
        { "volume=UUID=0f2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b root\nvolume=/dev/vdb\n", NULL },
        { "attest=hcl-nv\n", NULL },
        { "attest=none\n", NULL },
        { "attest=tsm\nattest-certs=/etc/cvmcrypt/certs\n", NULL },
        { "attest=tsm:/sys/kernel/config/tsm/report\n", NULL },
        { "attest=sev-guest:/dev/sev-guest\n", NULL },
        { "attest=vtpm\n", "'vtpm' is neither none, hcl-nv, tsm[:DIR] nor sev-guest[:DEVICE]" },
        { "attest=HCL-NV\n", "is neither none, hcl-nv" },
        { "attest=hcl-nv:/dev/tpm0\n", "is neither none, hcl-nv" },
        { "attest=tsm:relative\n", "is neither none, hcl-nv" },
        { "attest=tsm:/sys/../tsm\n", "is neither none, hcl-nv" },
        { "attest=sev-guest:\n", "is neither none, hcl-nv" },
        { "attest=tsm-x\n", "is neither none, hcl-nv" },
        { "attest=hcl-nv\nattest=tsm\n", "cfg:2: 'attest' is set twice" },
        { "attest-certs=certs\n", "not a clean absolute path" },
        { "provision-escrow-cert=/etc/cvmcrypt/escrow.pem\nprovision-escrow-out=/boot/efi/cvmcrypt-escrow.pem\n", NULL },
        { "provision-escrow-cert=escrow.pem\n", "bad value for 'provision-escrow-cert': 'escrow.pem' is not a clean absolute path" },
        { "provision-escrow-out=/boot/../escrow\n", "'provision-escrow-out': '/boot/../escrow' is not a clean absolute path" },
        { "provision-escrow-out=/a\nprovision-escrow-out=/b\n", "'provision-escrow-out' is set twice" },
        { "provision-reencrypt=foreground\n", NULL },
        { "provision-reencrypt=later\n", "'later' is neither foreground nor background" },
        { "provision-reencrypt=Background\n", "'Background' is neither foreground nor background" },
};

static void test_file_cases(void) {
        for (size_t i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
                const Case *t = &file_cases[i];
                ConfigError err = {};
                Config c;
                int r;

                config_init(&c);
                r = config_parse_file_text(&c, t->text, strlen(t->text), "cfg", &err);
                if (!t->expect)
                        CHECK(r == 0, "file case %zu accepted (%s)", i, err.message);
                else
                        CHECK(r < 0 && strstr(err.message, t->expect), "file case %zu rejected with '%s' (got %d '%s')",
                              i, t->expect, r, err.message);
                config_done(&c);
        }
}

static void test_file_limits(void) {
        ConfigError err = {};
        Config c;
        char *big;
        int r;

        config_init(&c);
        big = malloc(CONFIG_FILE_MAX + 2);
        memset(big, '#', CONFIG_FILE_MAX + 1);
        r = config_parse_file_text(&c, big, CONFIG_FILE_MAX + 1, "cfg", &err);
        CHECK(r == -EFBIG && strstr(err.message, "larger than"), "oversized file rejected: %s", err.message);

        memset(big, ' ', CONFIG_LINE_MAX + 1);
        r = config_parse_file_text(&c, big, CONFIG_LINE_MAX + 1, "cfg", &err);
        CHECK(r == -E2BIG && strstr(err.message, "cfg:1: line longer than 1024"), "overlong line rejected: %s", err.message);
        r = config_parse_file_text(&c, big, CONFIG_LINE_MAX, "cfg", &err);
        CHECK(r == 0, "line of exactly the limit accepted");
        free(big);

        r = config_parse_file_text(&c, "tpm=a\0b\n", 8, "cfg", &err);
        CHECK(r == -EINVAL && strstr(err.message, "NUL byte"), "NUL byte rejected: %s", err.message);

        char many[1024] = "";
        for (int i = 0; i < CONFIG_VOLUMES_MAX + 1; i++)
                snprintf(many + strlen(many), sizeof(many) - strlen(many), "volume=/dev/vd%c\n", 'a' + i);
        r = config_parse_file_text(&c, many, strlen(many), "cfg", &err);
        CHECK(r < 0 && strstr(err.message, "cfg:17: bad value for 'volume': more than 16 volumes"),
              "too many volumes rejected: %s", err.message);
        config_done(&c);
}

static void test_defaults(void) {
        Config c;

        config_init(&c);
        CHECK_STREQ(c.tpm, "device:/dev/tpmrm0", "default TCTI");
        CHECK(c.gate_pcr == 15, "default gate PCR 15");
        CHECK(c.tempdisk == TEMPDISK_AUTO, "temp disk detected by default");
        CHECK(c.tempdisk_disks == TEMPDISK_DISKS_FIRST && c.tempdisk_fs == TEMPDISK_FS_EXT4 &&
                      c.tempdisk_crypt == TEMPDISK_CRYPT_LUKS2 && c.tempdisk_swap == 0,
              "temp disk defaults: first disk, ext4, LUKS2, no swap");
        CHECK_STREQ(c.tempdisk_mount, "/mnt/resource", "temp disk mounted at /mnt/resource by default");
        CHECK(c.policy == NULL, "no attestation policy by default");
        CHECK(c.attest == NULL && c.attest_certs == NULL, "no attestation by default");
        CHECK(c.tpm_timeout == 30 && c.device_timeout == 30, "boot waits up to 30 s for the TPM and each volume");
        CHECK(c.provision_reencrypt == PROVISION_REENCRYPT_FOREGROUND, "the first boot re-keys before the volume opens");
        CHECK_STREQ(c.event_log, "/run/log/systemd/tpm2-measure.log", "default event log shared with systemd");
        config_done(&c);
}

static const Case cmdline_cases[] = {
        { "BOOT_IMAGE=/vmlinuz root=/dev/vda1 quiet\n", NULL },
        { "root=/dev/vda1 cvmcrypt.tempdisk=0 ro\n", NULL },
        { "cvmcrypt.volume=\"/dev/vda2 root\"", NULL },
        { "\"cvmcrypt.volume=/dev/vda2 root\"", NULL },
        { "cvmcrypt.tempdisk", "word 1: 'cvmcrypt.tempdisk' needs =VALUE" },
        { "quiet cvmcrypt.Tempdisk=0", "word 2: 'cvmcrypt.Tempdisk' is not a valid key" },
        { "cvmcrypt.nope=1", "word 1: unknown key 'nope'" },
        { "cvmcrypt.gate-pcr=9 cvmcrypt.gate-pcr=10", "word 2: 'gate-pcr' is set twice" },
        { "cvmcrypt.gate-pcr=3", "word 1: bad value for 'gate-pcr'" },
        { "a \"b c", "word 2: unbalanced double quote" },
        { "cvmcrypt.tpm=\x1b[2J", "control character 0x1b" },
        { "cvmcrypt.policy=", "word 1: 'policy' has an empty value" },
        { "cvmcrypt.attest=none", NULL },
        { "cvmcrypt.attest=sev", "word 1: bad value for 'attest'" },
};

static void test_cmdline_cases(void) {
        for (size_t i = 0; i < sizeof(cmdline_cases) / sizeof(cmdline_cases[0]); i++) {
                const Case *t = &cmdline_cases[i];
                ConfigError err = {};
                Config c;
                int r;

                config_init(&c);
                r = config_parse_cmdline_text(&c, t->text, strlen(t->text), "cmdline", &err);
                if (!t->expect)
                        CHECK(r == 0, "cmdline case %zu accepted (%s)", i, err.message);
                else
                        CHECK(r < 0 && strstr(err.message, t->expect), "cmdline case %zu rejected with '%s' (got '%s')",
                              i, t->expect, err.message);
                config_done(&c);
        }
}

static void test_cmdline_values(void) {
        ConfigError err = {};
        const char *text = "quiet cvmcrypt.volume=\"UUID=0f2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b root\" cvmcrypt.tempdisk=off";
        char big[4200];
        Config c;
        int r;

        config_init(&c);
        r = config_parse_cmdline_text(&c, text, strlen(text), "cmdline", &err);
        CHECK(r == 0 && c.n_volumes == 1, "quoted volume parsed");
        CHECK(c.n_volumes == 1 && strcmp(c.volumes[0].name, "root") == 0, "volume name kept");
        CHECK(c.tempdisk == TEMPDISK_OFF, "tempdisk=off disables the temp disk");
        config_done(&c);
        config_init(&c);
        text = "cvmcrypt.tempdisk-swap=512M cvmcrypt.tempdisk-mode=each cvmcrypt.tempdisk-crypt=plain "
               "cvmcrypt.provision-reencrypt=background";
        r = config_parse_cmdline_text(&c, text, strlen(text), "cmdline", &err);
        CHECK(r == 0 && c.tempdisk_swap == 512u << 20 && c.tempdisk_disks == TEMPDISK_DISKS_EACH &&
                      c.tempdisk_crypt == TEMPDISK_CRYPT_PLAIN && c.provision_reencrypt == PROVISION_REENCRYPT_BACKGROUND,
              "temp disk swap, mode and crypt, provision-reencrypt from the kernel command line (%s)", err.message);
        memset(big, 'a', sizeof(big));
        r = config_parse_cmdline_text(&c, big, sizeof(big), "cmdline", &err);
        CHECK(r == -EFBIG, "overlong kernel command line rejected: %s", err.message);
        config_done(&c);
}

static char *write_temp(const char *text, mode_t mode) {
        char *path = strdup("/tmp/cvmcrypt-test-XXXXXX");
        int fd = mkstemp(path);

        (void) !write(fd, text, strlen(text));
        (void) fchmod(fd, mode);
        close(fd);
        return path;
}

/* attest= needs policy=, wherever each comes from; attest=none on the command line turns it off. */
static void test_attest_needs_policy(void) {
        char *file = write_temp("attest=hcl-nv\n", 0644);
        char *with_policy = write_temp("attest=hcl-nv\npolicy=/etc/cvmcrypt/policy.json\n", 0644);
        char *none = write_temp("cvmcrypt.attest=none\n", 0644);
        char *cmdline_policy = write_temp("cvmcrypt.policy=/p.json\n", 0644);
        ConfigSources src = { .file = file, .file_required = true };
        ConfigError err;
        Config c;
        int r;

        r = config_load(&c, &src, &err);
        CHECK(r == -EINVAL && strstr(err.message, "attest=hcl-nv needs policy="), "attest= without policy= refused: %s",
              err.message);
        src.cmdline = none;
        r = config_load(&c, &src, &err);
        CHECK(r == 0 && c.attest == NULL, "cvmcrypt.attest=none on the command line turns attestation off (%s)",
              err.message);
        config_done(&c);
        src.cmdline = cmdline_policy;
        r = config_load(&c, &src, &err);
        CHECK(r == 0 && strcmp(c.attest, "hcl-nv") == 0 && strcmp(c.policy, "/p.json") == 0,
              "policy= from the command line completes attest= from the file (%s)", err.message);
        config_done(&c);
        src = (ConfigSources){ .file = with_policy, .file_required = true };
        r = config_load(&c, &src, &err);
        CHECK(r == 0 && strcmp(c.attest, "hcl-nv") == 0, "attest= with policy= accepted (%s)", err.message);
        config_done(&c);
        for (char **p = (char *[]){ file, with_policy, none, cmdline_policy, NULL }; *p; p++) {
                unlink(*p);
                free(*p);
        }
}

/* The escrow needs a certificate to encrypt to and a place to go: one without the other is refused. */
static void test_escrow_pair(void) {
        char *cert_only = write_temp("provision-escrow-cert=/etc/cvmcrypt/escrow.pem\n", 0644);
        char *out_cmdline = write_temp("cvmcrypt.provision-escrow-out=/run/escrow.pem\n", 0644);
        ConfigSources src = { .file = cert_only, .file_required = true };
        ConfigError err;
        Config c;
        int r;

        r = config_load(&c, &src, &err);
        CHECK(r == -EINVAL && strstr(err.message, "provision-escrow-cert= and provision-escrow-out= go together"),
              "escrow certificate without output refused: %s", err.message);
        src.cmdline = out_cmdline;
        r = config_load(&c, &src, &err);
        CHECK(r == 0 && strcmp(c.provision_escrow_cert, "/etc/cvmcrypt/escrow.pem") == 0 &&
                      strcmp(c.provision_escrow_out, "/run/escrow.pem") == 0,
              "the output from the command line completes the pair (%s)", err.message);
        config_done(&c);
        for (char **p = (char *[]){ cert_only, out_cmdline, NULL }; *p; p++) {
                unlink(*p);
                free(*p);
        }
}

static void test_load_precedence(void) {
        char *file = write_temp("gate-pcr=14\ntempdisk=auto\nvolume=/dev/vda2 a\nvolume=/dev/vda3 b\n", 0644);
        char *cmdline = write_temp("ro cvmcrypt.tempdisk=0 cvmcrypt.volume=/dev/vdc\n", 0644);
        ConfigSources src = { .file = file, .file_required = true, .cmdline = cmdline };
        ConfigError err;
        Config c;
        int r;

        r = config_load(&c, &src, &err);
        CHECK(r == 0, "file + command line load (%s)", err.message);
        CHECK(c.gate_pcr == 14, "file value kept where the command line is silent");
        CHECK(c.tempdisk == TEMPDISK_OFF, "command line wins over the file");
        CHECK(c.n_volumes == 1 && strcmp(c.volumes[0].device, "/dev/vdc") == 0,
              "command-line volumes replace the file's list");
        config_done(&c);

        src.cmdline = "/nonexistent/cmdline";
        r = config_load(&c, &src, &err);
        CHECK(r == -ENOENT && strstr(err.message, "/nonexistent/cmdline: cannot open"), "missing cmdline file: %s",
              err.message);
        CHECK(c.tpm == NULL && c.n_volumes == 0, "failed load leaves nothing behind, not half a config");

        src = (ConfigSources){ .file = "/nonexistent/cvmcrypt.conf", .file_required = false };
        r = config_load(&c, &src, &err);
        CHECK(r == 0, "missing default config file means defaults");
        config_done(&c);
        src.file_required = true;
        r = config_load(&c, &src, &err);
        CHECK(r == -ENOENT && strstr(err.message, "cannot open"), "missing --config file is an error: %s", err.message);

        src = (ConfigSources){ .file = "/tmp", .file_required = true };
        r = config_load(&c, &src, &err);
        CHECK(r < 0 && strstr(err.message, "not a regular file"), "directory as config rejected: %s", err.message);

        test_attest_needs_policy();
        test_escrow_pair();

        if (geteuid() == 0) {
                chmod(file, 0666);
                src = (ConfigSources){ .file = file, .file_required = true };
                r = config_load(&c, &src, &err);
                CHECK(r == -EPERM && strstr(err.message, "not writable by group or others"),
                      "world-writable config refused: %s", err.message);
        }
        unlink(file);
        unlink(cmdline);
        free(file);
        free(cmdline);
}

int main(void) {
        test_defaults();
        test_file_cases();
        test_file_limits();
        test_cmdline_cases();
        test_cmdline_values();
        test_load_precedence();
        return tap_done();
}
