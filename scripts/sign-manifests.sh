#!/usr/bin/env bash
# Sign manifests for /release: an ASCII-armored detached signature FILE.asc per FILE.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: scripts/sign-manifests.sh [--key KEY] FILE [FILE ...]

Writes FILE.asc next to each FILE: an ASCII-armored detached signature over the exact bytes
(gpg --armor --detach-sign), as kuberpult's /release verifies them. Uses GNUPGHOME (or
~/.gnupg); --key picks the signing key (fingerprint, id or email; default: gpg's default key).
A passphrase, if the key has one, is asked by gpg's pinentry or read from
KUBERPULT_GPG_PASSPHRASE (loopback mode).
TXT
}

key=""
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --key) key="${2:?--key needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "sign-manifests.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -gt 0 ] || { echo "sign-manifests.sh: give at least one FILE" >&2; exit 2; }

gpg_args=(--batch --yes --armor --detach-sign)
[ -z "$key" ] || gpg_args+=(--local-user "$key")
for file in "${files[@]}"; do
  [ -f "$file" ] || { echo "sign-manifests.sh: '$file' does not exist" >&2; exit 2; }
  if [ -n "${KUBERPULT_GPG_PASSPHRASE+x}" ]; then
    printf '%s' "$KUBERPULT_GPG_PASSPHRASE" | gpg "${gpg_args[@]}" --pinentry-mode loopback \
      --passphrase-fd 0 --output "$file.asc" "$file"
  else
    gpg "${gpg_args[@]}" --output "$file.asc" "$file"
  fi
  echo "signed $file -> $file.asc" >&2
done
