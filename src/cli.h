/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "config.h"

/* Parsed command-line options; main.c fills it, verbs read it. */
typedef struct CliArgs {
        bool json;
        bool dry_run;
        const char *device;
} CliArgs;

typedef int (*VerbRun)(const Config *cfg, const CliArgs *args, int argc, char **argv);

int verb_boot(const Config *cfg, const CliArgs *args, int argc, char **argv);
