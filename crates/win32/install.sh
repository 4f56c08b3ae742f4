#!/usr/bin/env bash
# Installs the Win32 C ABI: libobjmgr_win32.{so,a}, the headers, a pkg-config
# file, and the broker (objmgrd) that programs start on demand.
#
#   crates/win32/install.sh [PREFIX]      (default /usr/local; or PREFIX=... env)
#
# Then: cc app.c $(pkg-config --cflags --libs objmgr-win32)
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for a non-standard prefix).
# objmgrd goes to PREFIX/bin, and the library starts it from there.
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix="${1:-${PREFIX:-/usr/local}}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
# The libraries start the broker only from a path fixed at build time (or
# OBJMGR_BROKER, or PATH): fix it to where it is installed.
OBJMGR_BROKER_PATH="$prefix/bin/objmgrd" cargo build --release -p objmgr-win32 -p objmgr-cli
install -d "$prefix/lib/pkgconfig" "$prefix/include/objmgr-win32" "$prefix/bin"
install -m 0755 target/release/libobjmgr_win32.so "$prefix/lib/"
install -m 0644 target/release/libobjmgr_win32.a "$prefix/lib/"
install -m 0644 crates/win32/include/*.h "$prefix/include/objmgr-win32/"
install -m 0755 target/release/objmgrd target/release/objmgr "$prefix/bin/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" crates/win32/objmgr-win32.pc.in \
    > "$prefix/lib/pkgconfig/objmgr-win32.pc"
echo "installed objmgr-win32 $version under $prefix"
