#!/usr/bin/env bash
# Installs the Debian packages that `make run` and `make test` use, if any is missing:
# PostgreSQL (the store), age (the tests check that its keys and ours interoperate), and the
# real peers the tests talk to: swaks (an SMTP client, with Net::SSLeay for STARTTLS), Dovecot
# (the IMAP server of the IMAP tests and `make bench-imap`) and openssl (self-signed
# certificates for the STARTTLS and IMAP TLS tests).
set -euo pipefail

wanted=(postgresql age swaks libnet-ssleay-perl openssl dovecot-imapd)
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "missing packages: ${missing[*]} (install them)" >&2; exit 2; }
echo "Installing ${missing[*]}..." >&2
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
