#!/usr/bin/env bash
# Sign manifests for /release: an ASCII-armored detached signature FILE.asc per FILE.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: scripts/sign-manifests.sh [--key KEY] FILE [FILE ...]
       scripts/sign-manifests.sh [--key KEY] --envelope APP VERSION ENV=FILE [ENV=FILE ...]

Writes FILE.asc next to each FILE: an ASCII-armored detached signature over the exact bytes
(gpg --armor --detach-sign), as kuberpult's /release verifies them. Uses GNUPGHOME (or
~/.gnupg); --key picks the signing key (fingerprint, id or email; default: gpg's default key).
A passphrase, if the key has one, is asked by gpg's pinentry or read from
KUBERPULT_GPG_PASSPHRASE (loopback mode).

--envelope signs each manifest's envelope for application APP, version VERSION and its
environment ENV instead of its bytes (a server with KUBERPULT_SIGNATURE_MODE=envelope; such
a signature cannot be replayed for another release). The envelope is the README's
"Envelope signatures" format, built here with sha256sum.
TXT
}

key=""
files=()
application=""
version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --key) key="${2:?--key needs a value}"; shift 2 ;;
    --envelope)
      application="${2:?--envelope needs APP VERSION}"; version="${3:?--envelope needs APP VERSION}"
      [[ "$version" =~ ^[0-9]+$ ]] || { echo "sign-manifests.sh: VERSION must be a number" >&2; exit 2; }
      version=$((10#$version))  # as the server writes it: no leading zeros
      shift 3 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "sign-manifests.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -gt 0 ] || { echo "sign-manifests.sh: give at least one FILE" >&2; exit 2; }

gpg_args=(--batch --yes --armor --detach-sign)
[ -z "$key" ] || gpg_args+=(--local-user "$key")
for item in "${files[@]}"; do
  file="$item"
  if [ -n "$application" ]; then
    case "$item" in
      *=*) environment="${item%%=*}"; file="${item#*=}" ;;
      *) echo "sign-manifests.sh: with --envelope give ENV=FILE, not '$item'" >&2; exit 2 ;;
    esac
  fi
  [ -f "$file" ] || { echo "sign-manifests.sh: '$file' does not exist" >&2; exit 2; }
  # What is signed: the file itself, or its envelope (on stdin, for gpg to read).
  if [ -n "$application" ]; then
    digest="$(sha256sum < "$file" | cut -d' ' -f1)"
    printf 'kuberpult-lite envelope v1\napplication: %s\nenvironment: %s\nversion: %s\nmanifest-sha256: %s\n' \
      "$application" "$environment" "$version" "$digest" > "$file.envelope"
    source_file="$file.envelope"
  else
    source_file="$file"
  fi
  if [ -n "${KUBERPULT_GPG_PASSPHRASE+x}" ]; then
    printf '%s' "$KUBERPULT_GPG_PASSPHRASE" | gpg "${gpg_args[@]}" --pinentry-mode loopback \
      --passphrase-fd 0 --output "$file.asc" "$source_file"
  else
    gpg "${gpg_args[@]}" --output "$file.asc" "$source_file"
  fi
  [ "$source_file" = "$file" ] || rm -f "$source_file"
  echo "signed $file -> $file.asc" >&2
done
