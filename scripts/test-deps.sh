#!/usr/bin/env bash
# Make sure the real services the tests run are installed: Redis, Dovecot, GNU imap4d
# (a second IMAP server for the sync tests), Chromium, PostgreSQL (the second database
# the suite runs on; the tests start their own throw-away cluster).
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
{ command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ]; } || missing+=(dovecot-imapd)
{ command -v doveadm >/dev/null || [ -x /usr/bin/doveadm ]; } || missing+=(dovecot-imapd)
{ command -v imap4d >/dev/null || [ -x /usr/sbin/imap4d ]; } || missing+=(mailutils-imap4d)
command -v chromium >/dev/null || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null \
    || missing+=(postgresql)

# Courier-IMAP (a third IMAP server, without UIDNEXT) conflicts with dovecot-imapd: it is
# unpacked into .cache/courier, not installed. Does nothing when it is there already.
"$(dirname "$0")/courier-unpack.sh" \
    || echo "Courier-IMAP could not be unpacked: its tests will skip" >&2

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
# shellcheck disable=SC2207
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "Installing test services: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    # The tests start their own imap4d on a loopback port: stop the Debian service
    # wherever the package's installation started one on port 143.
    # Debian's postgresql starts a cluster on port 5432 wherever it can: the tests do not
    # use it.
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
        if [ -d /run/systemd/system ]; then
            systemctl disable --now postgresql >/dev/null 2>&1 || true
        elif command -v service >/dev/null; then
            service postgresql stop >/dev/null 2>&1 || true
        fi
    fi
    if [[ " ${missing[*]} " == *" mailutils-imap4d "* ]]; then
        if [ -d /run/systemd/system ]; then
            systemctl disable --now mailutils-imap4d >/dev/null 2>&1 || true
        elif command -v service >/dev/null; then
            service mailutils-imap4d stop >/dev/null 2>&1 || true
        fi
    fi
else
    echo "The tests need these Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
