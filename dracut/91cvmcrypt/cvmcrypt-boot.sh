#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# dracut without systemd: an initqueue/settled hook, so it runs once udev has settled and before the
# crypt module's cryptroot-ask jobs (queued under later names), which then find the volumes open or
# ask for the passphrase, after the cap. The hook runs on every pass of the queue: once is enough.

[ -e /run/cvmcrypt/boot-ran ] && return 0
mkdir -p /run/cvmcrypt
: >/run/cvmcrypt/boot-ran
if ! /usr/sbin/cvmcrypt boot; then
        warn "cvmcrypt: boot failed (see the messages above); the passphrase still opens the volumes"
        # A boot that stopped before its cap: cap now, before any prompt.
        [ -e /run/cvmcrypt/capped ] || /usr/sbin/cvmcrypt cap
fi
