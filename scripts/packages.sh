#!/usr/bin/env bash
# Installs the Debian packages that `make run` and `make test` use, if any is missing:
# PostgreSQL (the store), age (the tests check that its keys and ours interoperate), and the
# real peers the tests talk to: swaks (an SMTP client, with Net::SSLeay for STARTTLS), Dovecot
# (the IMAP server of the IMAP tests and `make bench-imap`) and openssl (self-signed
# certificates for the STARTTLS and IMAP TLS tests), and libmaxmind-db-writer-perl (the
# geolocation tests write small MMDB files with it), dnsmasq-base (the reverse DNS tests
# and `make bench-ptr` run a real DNS server on loopback), for the visual report chromium
# (prints `report --format pdf`; the report tests render pages in it), fonts-liberation (its
# text fonts) and poppler-utils (pdftotext and pdftoppm check the PDF), and python3-venv and
# time for `make bench-compare` (parsedmarc in a virtual environment, peak RSS from /usr/bin/time).
#
#   scripts/packages.sh              all of them
#   scripts/packages.sh PACKAGE...   only these (scripts/db.sh asks for postgresql)
#
# Another apt or dpkg process (unattended upgrades, on a real server) may hold the locks for
# minutes: this waits for them, up to APT_LOCK_SECONDS (300), instead of failing at once.
set -euo pipefail

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(postgresql age swaks libnet-ssleay-perl openssl dovecot-imapd libmaxmind-db-writer-perl dnsmasq-base chromium fonts-liberation poppler-utils python3-venv time)
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "missing packages: ${missing[*]} (install them)" >&2; exit 2; }
echo "Installing ${missing[*]}..." >&2
sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
patience="${APT_LOCK_SECONDS:-300}"
# DPkg::Lock::Timeout makes apt wait for the dpkg locks (install)...
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o "DPkg::Lock::Timeout=$patience")

# ... but not for the lock of the package lists (update, apt 2.6): wait for that one here.
deadline=$((SECONDS + patience))
until output="$("${apt[@]}" update -qq 2>&1)"; do
  if ! grep -q "Could not get lock" <<<"$output" || [ "$SECONDS" -ge "$deadline" ]; then
    echo "$output" >&2
    exit 1
  fi
  [ -n "${said:-}" ] || { echo "Waiting for another apt process (unattended upgrades?) to finish..." >&2; said=1; }
  sleep 5
done
"${apt[@]}" install -y -qq "${missing[@]}" >/dev/null
