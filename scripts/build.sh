#!/usr/bin/env bash
# build.sh DIR [CONFIGURE-ARGS...]: out-of-tree build of cvmcrypt in DIR (relative to the top).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
shift
cd "$top"
# The generated Makefiles regenerate themselves when configure.ac or Makefile.am change later.
[ -x configure ] || autoreconf -fi >/dev/null 2>&1
mkdir -p "$dir"
cd "$dir"
# Reconfigure when the arguments changed since the last run.
if [ ! -f Makefile ] || [ "$(cat .configure-args 2>/dev/null)" != "$*" ]; then
        "$top/configure" -q "$@"
        printf '%s' "$*" >.configure-args
fi
make -j"$(nproc)" >/dev/null
