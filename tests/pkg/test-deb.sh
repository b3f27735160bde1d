#!/usr/bin/env bash
# tests/pkg/test-deb.sh: builds the Debian packages (dpkg-buildpackage -us -uc -b) from a copy of the
# working tree in a temporary directory (the tree itself is never touched), runs lintian on them
# (any error fails), unpacks them into a throwaway root and checks that every file is where Debian
# expects it and that the packaged binary runs. Prints "N passed, N failed". Needs the packages of
# scripts/deps.sh (debhelper, devscripts, lintian, dpkg-dev and the build dependencies).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/cvmcrypt-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

check() { # check WHAT CMD...
        if "${@:2}"; then
                passed=$((passed + 1))
        else
                echo "FAIL: $1"
                failed=$((failed + 1))
        fi
}

# The tracked and new files of the working tree, without what .gitignore keeps out (build output).
src=$tmp/cvmcrypt-0.1.0
mkdir -p "$src"
(cd "$top" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' |
        tar --null -T - -cf -) | tar -xf - -C "$src"

start=$SECONDS
if (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
        passed=$((passed + 1))
else
        echo "FAIL: dpkg-buildpackage (last lines of its log):"
        tail -n 40 "$tmp/build.log"
        echo "$passed passed, $((failed + 1)) failed"
        exit 1
fi
echo "dpkg-buildpackage took $((SECONDS - start)) s"

changes=$(ls "$tmp"/cvmcrypt_*.changes)
lintian --fail-on error --tag-display-limit 0 "$changes" >"$tmp/lintian.log" 2>&1
lintian_rc=$?
cat "$tmp/lintian.log"
check "lintian reports no error" [ "$lintian_rc" -eq 0 ]

root=$tmp/root
for deb in "$tmp"/*.deb; do
        dpkg -x "$deb" "$root"
        dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|; s|/$||' | grep -v '^$' >>"$tmp/files"
done

expect_file() { # expect_file PATH [x]: PATH is in a package (executable with x)
        [ -f "$root$1" ] && grep -qxF "$1" "$tmp/files" && { [ "${2:-}" != x ] || [ -x "$root$1" ]; }
}

# cvmcrypt: the binary, its man pages, trust anchors, agent settings, units.
check "/usr/sbin/cvmcrypt" expect_file /usr/sbin/cvmcrypt x
check "the packaged binary runs" sh -c "'$root/usr/sbin/cvmcrypt' --version | grep -qx 'cvmcrypt 0.1.0'"
: >"$tmp/empty"
check "the anchors are where the binary looks" sh -c "'$root/usr/sbin/cvmcrypt' --kernel-cmdline '$tmp/empty' --config '$tmp/empty' boot --dry-run | grep -q 'anchors /usr/share/cvmcrypt/anchors'"
check "the configuration path is /etc/cvmcrypt" sh -c "'$root/usr/sbin/cvmcrypt' --help | grep -q '/etc/cvmcrypt/cvmcrypt.conf'"
check "cvmcrypt(8)" expect_file /usr/share/man/man8/cvmcrypt.8.gz
check "cvmcrypt.conf(5)" expect_file /usr/share/man/man5/cvmcrypt.conf.5.gz
for f in ark-milan ark-genoa ark-turin ask-milan ask-genoa ask-turin asvk-milan asvk-genoa; do
        check "anchor $f" expect_file "/usr/share/cvmcrypt/anchors/$f.pem"
done
check "agent settings" expect_file /usr/share/cvmcrypt/agents/waagent.conf.cvmcrypt
for u in cvmcrypt-unlock cvmcrypt-cap cvmcrypt-tempdisk cvmcrypt-reencrypt; do
        check "unit $u" expect_file "/lib/systemd/system/$u.service"
done
check "the background re-key is wanted by multi-user.target" sh -c "[ \"\$(readlink '$root/lib/systemd/system/multi-user.target.wants/cvmcrypt-reencrypt.service')\" = ../cvmcrypt-reencrypt.service ]"
check "copyright" expect_file /usr/share/doc/cvmcrypt/copyright
check "image builders' guide" sh -c "ls '$root/usr/share/doc/cvmcrypt/' | grep -q '^image-builders.md'"
# cvmcrypt-dracut and cvmcrypt-initramfs-tools.
check "dracut module" expect_file /usr/lib/dracut/modules.d/91cvmcrypt/module-setup.sh x
check "dracut hook" expect_file /usr/lib/dracut/modules.d/91cvmcrypt/cvmcrypt-boot.sh
check "initramfs-tools hook" expect_file /usr/share/initramfs-tools/hooks/cvmcrypt x
check "initramfs-tools local-top script" expect_file /usr/share/initramfs-tools/scripts/local-top/cvmcrypt x
# Nothing outside the Debian locations, and no unit is enabled on the installed system.
check "no file outside /usr, /lib, /etc" sh -c "! grep -v '^/\(usr\|lib\|etc\)\(/\|$\)' '$tmp/files'"
dpkg-deb -e "$(ls "$tmp"/cvmcrypt_*.deb)" "$tmp/ctrl"
check "no maintainer script touches the initrd units" sh -c "! grep -qs 'systemd' '$tmp'/ctrl/postinst '$tmp'/ctrl/prerm '$tmp'/ctrl/postrm"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
