#!/usr/bin/env bash
# Installs the Win32 C ABI: libobjmgr_win32.{so,a}, the headers, a pkg-config
# file, the broker (objmgrd) that programs start on demand, and the objmgr
# command with its man page and shell completions.
#
#   crates/win32/install.sh [PREFIX]      (default /usr/local; or PREFIX=... env)
#
# Then: cc app.c $(pkg-config --cflags --libs objmgr-win32)
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for a non-standard prefix). The
# flags carry an rpath to PREFIX/lib, so programs find the library without
# LD_LIBRARY_PATH or ldconfig. objmgrd goes to PREFIX/bin, and the library
# starts it from there.
#
# OBJMGR_FROM=DIR installs the already built libobjmgr_win32.{so,a}, objmgrd
# and objmgr found in DIR instead of building them (the test suite does).
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix="${1:-${PREFIX:-/usr/local}}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
if [ -n "${OBJMGR_FROM:-}" ]; then
    from="$OBJMGR_FROM"
else
    # The libraries start the broker only from a path fixed at build time
    # (or OBJMGR_BROKER, or PATH): fix it to where it is installed.
    OBJMGR_BROKER_PATH="$prefix/bin/objmgrd" cargo build --release -p objmgr-win32 -p objmgr-cli
    from=target/release
fi
install -d "$prefix/lib/pkgconfig" "$prefix/include/objmgr-win32" "$prefix/bin"
# The shared library under its full version, its SONAME and the link name;
# stripped (the symbols programs link against stay: they are dynamic).
install -m 0755 "$from/libobjmgr_win32.so" "$prefix/lib/libobjmgr_win32.so.$version"
strip --strip-unneeded "$prefix/lib/libobjmgr_win32.so.$version"
ln -sf "libobjmgr_win32.so.$version" "$prefix/lib/libobjmgr_win32.so.0"
ln -sf libobjmgr_win32.so.0 "$prefix/lib/libobjmgr_win32.so"
install -m 0644 "$from/libobjmgr_win32.a" "$prefix/lib/"
strip --strip-debug "$prefix/lib/libobjmgr_win32.a"
install -m 0644 crates/win32/include/*.h "$prefix/include/objmgr-win32/"
install -m 0755 "$from/objmgrd" "$from/objmgr" "$prefix/bin/"
strip "$prefix/bin/objmgrd" "$prefix/bin/objmgr"
# The objmgr command's man page and shell completions, from its own
# definitions.
install -d "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
    "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
"$prefix/bin/objmgr" manpage > "$prefix/share/man/man1/objmgr.1"
"$prefix/bin/objmgr" completions bash > "$prefix/share/bash-completion/completions/objmgr"
"$prefix/bin/objmgr" completions zsh > "$prefix/share/zsh/site-functions/_objmgr"
"$prefix/bin/objmgr" completions fish > "$prefix/share/fish/vendor_completions.d/objmgr.fish"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" crates/win32/objmgr-win32.pc.in \
    > "$prefix/lib/pkgconfig/objmgr-win32.pc"
# systemd units: the system-wide broker (socket-activated; enable with
# `systemctl enable --now objmgrd.socket`) and the optional per-user one.
install -d "$prefix/lib/systemd/system" "$prefix/lib/systemd/user" "$prefix/share/doc/objmgr"
for unit in objmgrd.socket objmgrd.service; do
    sed -e "s|@PREFIX@|$prefix|" "crates/server/systemd/$unit" > "$prefix/lib/systemd/system/$unit"
done
for unit in objmgrd-user.socket objmgrd-user.service; do
    sed -e "s|@PREFIX@|$prefix|" "crates/server/systemd/$unit" > "$prefix/lib/systemd/user/$unit"
done
install -m 0644 SECURITY.md "$prefix/share/doc/objmgr/"
echo "installed objmgr-win32 $version under $prefix"
