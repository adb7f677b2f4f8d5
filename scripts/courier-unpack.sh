#!/usr/bin/env bash
# Fetch Debian's Courier-IMAP and unpack it into .cache/courier/root (COURIER_ROOT
# overrides) for the sync tests against Courier (tests/services/courier.py). It is not
# installed: the courier-imap package conflicts with dovecot-imapd, which the tests need.
# Idempotent: does nothing when the tree is unpacked already. Needs apt-get and dpkg
# (not root, unless the package lists must be fetched first); where they are missing it
# says so and the Courier tests skip.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${COURIER_ROOT:-$repo/.cache/courier/root}
stamp=$root/.unpacked
# gamin: imapd watches the Maildir through it (without gam_server each command waits).
packages=(courier-imap courier-base courier-authlib courier-authlib-userdb gamin)
unpacked() { [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "${packages[*]}" ]; }
unpacked && exit 0

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "Courier-IMAP is unpacked from Debian packages (apt-get, dpkg): its tests will skip" >&2
    exit 0
fi

mkdir -p "$(dirname "$root")"
exec 9>"$(dirname "$root")/.lock"
flock 9
unpacked && exit 0  # another run unpacked it meanwhile

if ! apt-cache show "${packages[@]}" >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "apt does not know ${packages[*]}: run 'sudo apt-get update' first" >&2
        exit 1
    fi
    apt-get update -q
fi
# The libraries they link that are not installed here (libcourier-unicode, libfam...):
# the first choice of each dependency, when it is a real package.
extra=()
while read -r lib; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$lib" 2>/dev/null || true)
    [ "$status" = installed ] || extra+=("$lib")
done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
             --no-replaces --no-enhances "${packages[@]}" \
         | awk '$1 ~ /Depends:$/ && $2 ~ /^lib/ {print $2}' | sort -u)

work=$(mktemp -d)
trap 'rm -rf "$work" "$root.tmp"' EXIT
echo "Fetching Courier-IMAP to unpack into $root: ${packages[*]} ${extra[*]}"
(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "${packages[@]}" "${extra[@]}")
rm -rf "$root.tmp"
mkdir -p "$root.tmp"
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$root.tmp"
done

# Every program must find its libraries (installed, or unpacked beside it).
libpath=$(find "$root.tmp" -name 'lib*.so*' -not -path '*/courier-authlib/libauth*' \
              -printf '%h\n' | sort -u | paste -sd: -)
for prog in usr/sbin/couriertcpd usr/bin/couriertls usr/lib/courier/courier/imaplogin \
            usr/bin/imapd usr/lib/courier/courier-authlib/authdaemond \
            usr/lib/courier/courier-authlib/makedatprog usr/libexec/gam_server \
            usr/lib/courier-authlib/libauthuserdb.so.0; do
    if [ ! -e "$root.tmp/$prog" ]; then
        echo "Courier-IMAP: $prog is not in the unpacked packages" >&2
        exit 1
    fi
    if LD_LIBRARY_PATH=$libpath ldd "$root.tmp/$prog" | grep -q 'not found'; then
        echo "Courier-IMAP: $prog misses libraries:" >&2
        LD_LIBRARY_PATH=$libpath ldd "$root.tmp/$prog" | grep 'not found' >&2
        exit 1
    fi
done

{ echo "${packages[*]}"; (cd "$work" && ls -1 ./*.deb); } > "$root.tmp/.unpacked"
rm -rf "$root"
mv "$root.tmp" "$root"
echo "Courier-IMAP unpacked into $root"
