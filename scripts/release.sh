#!/usr/bin/env bash
# Release by hand with curl: the manifests given as ENV=FILE, the metadata of the current git
# checkout. Run scripts/release.sh --help for the options.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: scripts/release.sh --url URL --application APP [options] ENV=FILE [ENV=FILE ...]

Sends one release to a kuberpult(-lite) server with curl. From the git checkout in the
current directory it takes source_commit_id (HEAD), previous_commit_id (HEAD~1, if any),
source_author and source_message (of HEAD), the default version (the number of first-parent
commits of HEAD) and the author headers (git config user.name / user.email).

options:
  --url URL              server base URL (required)
  --application APP      application name (required)
  --version N            release version (default: git rev-list --count --first-parent HEAD)
  --team TEAM            owning team
  --display-version V    display version (1 to 15 characters)
  --ci-link URL          link to the CI run
  --signatures           attach FILE.asc as signatures[ENV] (see scripts/sign-manifests.sh)
  --legacy               post to /release (signature-checked) instead of /api/release
  --token-file FILE      read the bearer token from FILE ('-' for standard input)
  -h, --help             this text

environment: KUBERPULT_DEX_ACCESS_TOKEN (sent as Authorization: Bearer, unless --token-file),
KUBERPULT_IAP_TOKEN (sent as Proxy-Authorization: Bearer). Tokens reach curl through a
header file descriptor, never its command line (which every user of the machine can read
in ps). Retries 408, 429, 5xx and network errors (3 times).
Exit status: 0 released (201) or already there (200); 22 the server refused; 2 usage.
TXT
}

die() { echo "release.sh: $*" >&2; exit 2; }

url="" application="" version="" team="" display_version="" ci_link="" signatures=0 path="api/release"
token_file=""
pairs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url="${2:?--url needs a value}"; shift 2 ;;
    --application) application="${2:?--application needs a value}"; shift 2 ;;
    --version) version="${2:?--version needs a value}"; shift 2 ;;
    --team) team="${2:?--team needs a value}"; shift 2 ;;
    --display-version) display_version="${2:?--display-version needs a value}"; shift 2 ;;
    --ci-link) ci_link="${2:?--ci-link needs a value}"; shift 2 ;;
    --signatures) signatures=1; shift ;;
    --legacy) path="release"; shift ;;
    --token-file) token_file="${2:?--token-file needs a value}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *=*) pairs+=("$1"); shift ;;
    *) die "expected ENV=FILE, got '$1' (see --help)" ;;
  esac
done
[ -n "$url" ] || die "--url is required"
[ -n "$application" ] || die "--application is required"
[ ${#pairs[@]} -gt 0 ] || die "give at least one ENV=FILE"
git rev-parse --git-dir >/dev/null 2>&1 || die "run it inside the git checkout of the service"

args=(--form-string "application=$application")
for pair in "${pairs[@]}"; do
  env="${pair%%=*}" file="${pair#*=}"
  [ -f "$file" ] || die "manifest file '$file' for environment '$env' does not exist"
  args+=(-F "manifests[$env]=@$file;filename=$env-manifest")
  if [ "$signatures" = 1 ]; then
    [ -f "$file.asc" ] || die "signature '$file.asc' is missing (scripts/sign-manifests.sh $file)"
    args+=(-F "signatures[$env]=@$file.asc;filename=$env-signature")
  fi
done
[ -n "$version" ] || version="$(git rev-list --count --first-parent HEAD)"
args+=(--form-string "version=$version")
args+=(--form-string "source_commit_id=$(git rev-parse HEAD)")
if previous="$(git rev-parse -q --verify 'HEAD~1' 2>/dev/null)"; then
  args+=(--form-string "previous_commit_id=$previous")
fi
args+=(--form-string "source_author=$(git log -1 --format='%an <%ae>')")
args+=(--form-string "source_message=$(git log -1 --format=%B)")
[ -z "$team" ] || args+=(--form-string "team=$team")
[ -z "$display_version" ] || args+=(--form-string "display_version=$display_version")
[ -z "$ci_link" ] || args+=(--form-string "ci_link=$ci_link")

name="$(git config user.name || true)" email="$(git config user.email || true)"
[ -z "$name" ] || args+=(-H "author-name: $(printf '%s' "$name" | base64 -w0)")
[ -z "$email" ] || args+=(-H "author-email: $(printf '%s' "$email" | base64 -w0)")
token=""
if [ -n "$token_file" ]; then
  if [ "$token_file" = - ]; then token="$(cat)"; else
    [ -f "$token_file" ] || die "token file '$token_file' does not exist"
    token="$(cat -- "$token_file")"
  fi
  token="${token%%[[:space:]]*}"
  [ -n "$token" ] || die "the token file '$token_file' is empty"
elif [ -n "${KUBERPULT_DEX_ACCESS_TOKEN:-}" ]; then
  token="$KUBERPULT_DEX_ACCESS_TOKEN"
fi
# Secret headers reach curl on its standard input (-H @-): printf is a shell builtin, so the
# token is in no process's argv.
secret_headers=""
[ -z "$token" ] || secret_headers+="Authorization: Bearer $token"$'\n'
[ -z "${KUBERPULT_IAP_TOKEN:-}" ] || secret_headers+="Proxy-Authorization: Bearer $KUBERPULT_IAP_TOKEN"$'\n'

echo "release.sh: releasing version $version of $application to ${url%/}/$path" >&2
printf '%s' "$secret_headers" | curl --silent --show-error --fail-with-body --retry 3 \
  --retry-max-time 120 --write-out '\nHTTP %{http_code}\n' -H @- "${args[@]}" "${url%/}/$path"
