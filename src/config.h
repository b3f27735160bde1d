/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_LINE_MAX 1024
#define CONFIG_FILE_MAX (64 * 1024)
#define CONFIG_VOLUMES_MAX 16
#define CONFIG_VOLUME_NAME_MAX 64

typedef enum TempdiskMode {
        TEMPDISK_AUTO,   /* find the disk by its positive identity */
        TEMPDISK_OFF,    /* cvmcrypt.tempdisk=0 */
        TEMPDISK_DEVICE, /* an explicit /dev/disk/by-* path */
} TempdiskMode;

/* tempdisk-mode: several local disks found by identity (NVMe Direct Disks) */
typedef enum TempdiskDisks {
        TEMPDISK_DISKS_FIRST, /* only the first */
        TEMPDISK_DISKS_EACH,  /* each as its own volume */
} TempdiskDisks;

typedef enum TempdiskFs {
        TEMPDISK_FS_EXT4,
        TEMPDISK_FS_XFS,
} TempdiskFs;

typedef enum TempdiskCrypt {
        TEMPDISK_CRYPT_LUKS2, /* LUKS2 header without keyslots, activated by volume key */
        TEMPDISK_CRYPT_PLAIN, /* plain dm-crypt: nothing on the disk */
} TempdiskCrypt;

typedef enum ProvisionReencrypt {
        PROVISION_REENCRYPT_FOREGROUND, /* the re-key completes before the volume opens */
        PROVISION_REENCRYPT_BACKGROUND, /* the volume opens with the re-key pending; the real root runs it */
} ProvisionReencrypt;

typedef struct ConfigVolume {
        char *device; /* absolute /dev path, or UUID=... */
        char *name;   /* mapping name; NULL means luks-UUID, as systemd names it */
} ConfigVolume;

typedef struct Config {
        char *tpm;              /* TCTI */
        unsigned tpm_timeout;   /* seconds to wait for the TPM device */
        unsigned device_timeout; /* seconds boot waits for each volume's device */
        unsigned gate_pcr;
        char *anchors;          /* trust-anchor directory */
        char *policy;           /* attestation policy file; NULL: none */
        char *attest;           /* attestation source (hcl-nv, tsm[:DIR], sev-guest[:DEV]); NULL: none */
        char *attest_certs;     /* VCEK/VLEK and chain for sources without a certificate table */
        char *provision_escrow_cert; /* admin certificate for the first boot's recovery key; NULL: none */
        char *provision_escrow_out;  /* where the escrow is written */
        ProvisionReencrypt provision_reencrypt;
        char *event_log;
        TempdiskMode tempdisk;
        char *tempdisk_device;
        char *tempdisk_mount;
        TempdiskDisks tempdisk_disks;
        TempdiskFs tempdisk_fs;
        TempdiskCrypt tempdisk_crypt;
        uint64_t tempdisk_swap; /* bytes of swap file on the temp disk; 0: none */
        ConfigVolume volumes[CONFIG_VOLUMES_MAX];
        size_t n_volumes;
} Config;

/* Where a problem was found, for one clear message: "FILE:LINE: what". */
typedef struct ConfigError {
        char message[512];
} ConfigError;

typedef struct ConfigSources {
        const char *file;      /* config file */
        bool file_required;    /* false: a missing default file means defaults */
        const char *cmdline;   /* kernel command line file, normally /proc/cmdline; NULL: none */
} ConfigSources;

void config_init(Config *c);
void config_done(Config *c);

/* Defaults, then the file, then cvmcrypt.* from the kernel command line (which wins).
 * On failure c is left empty (nothing to free) and err says what and where. */
int config_load(Config *c, const ConfigSources *src, ConfigError *err);

/* Parsers for one source, exposed for the unit and fuzz tests. `where` names the source. */
int config_parse_file_text(Config *c, const char *text, size_t len, const char *where, ConfigError *err);
int config_parse_cmdline_text(Config *c, const char *text, size_t len, const char *where, ConfigError *err);

const char *tempdisk_mode_to_string(TempdiskMode m);
