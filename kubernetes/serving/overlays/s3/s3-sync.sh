#!/bin/bash
# Copies the model registry from S3 or MinIO into MODEL_DIR, a folder that TF
# Serving reads from local disk. The stock tensorflow/serving image has had no
# s3:// filesystem since 2.7 (see kubernetes/README.md), so the server cannot
# read the bucket itself.
#
#   s3-sync.sh --once   copy once, then exit. The init container runs this,
#                       so the server starts with the versions on disk.
#   s3-sync.sh          copy every SYNC_INTERVAL_SECONDS, forever. The sidecar
#                       runs this, so the server sees new versions.
#
# A version appears under its number only when it is complete. The registry
# writes manifest.json last, so a downloaded folder without one is still being
# pushed. The script hard-links each complete download into a hidden folder,
# then renames that folder to the version number in one atomic step. TF
# Serving never sees half a version.
#
# Environment: MODEL_SOURCE (s3://BUCKET/.../taxi), MODEL_DIR (/models/taxi),
# AWS_REGION, and for MinIO or other S3-compatible stores S3_ENDPOINT
# (host:port), S3_USE_HTTPS and S3_VERIFY_SSL (1 or 0). These are the variable
# names of TensorFlow's S3 filesystem. Credentials: AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, or IRSA's web identity token.
set -euo pipefail

: "${MODEL_SOURCE:?must be the registry folder of the model, s3://BUCKET/.../taxi}"
: "${MODEL_DIR:?must be the folder TF Serving reads, e.g. /models/taxi}"
interval="${SYNC_INTERVAL_SECONDS:-30}"
root="$(dirname "$MODEL_DIR")"
download="$root/.download/$(basename "$MODEL_DIR")"
# The sidecar's probes read the time of the last complete pass from this file.
heartbeat="$root/.last-sync"

once=false
case "${1:-}" in
  --once) once=true ;;
  "") ;;
  *) echo "usage: $0 [--once], got: $*" >&2; exit 2 ;;
esac

aws_options=()
if [ -n "${S3_ENDPOINT:-}" ]; then
  scheme=https
  [ "${S3_USE_HTTPS:-1}" = 0 ] && scheme=http
  aws_options+=(--endpoint-url "$scheme://$S3_ENDPOINT")
fi
if [ "${S3_VERIFY_SSL:-1}" = 0 ]; then
  aws_options+=(--no-verify-ssl)
fi

sync_once() {
  mkdir -p "$download" "$MODEL_DIR"
  # The registry keeps its push bookkeeping in hidden folders (.claims,
  # .staging-*); the server needs none of it.
  aws "${aws_options[@]}" s3 sync "$MODEL_SOURCE" "$download" \
    --delete --only-show-errors --no-progress --exclude '.*'
  local path version
  for path in "$download"/*/; do
    version="$(basename "$path")"
    case "$version" in *[!0-9]*) continue ;; esac
    [ -e "$MODEL_DIR/$version" ] && continue
    [ -f "$path/manifest.json" ] || continue
    rm -rf "$MODEL_DIR/.publish-$version"
    cp -al "$path" "$MODEL_DIR/.publish-$version"
    mv -T "$MODEL_DIR/.publish-$version" "$MODEL_DIR/$version"
    echo "published version $version of $MODEL_SOURCE in $MODEL_DIR"
  done
  # Registry retention deleted these versions; it never deletes a labelled one.
  for path in "$MODEL_DIR"/*/; do
    version="$(basename "$path")"
    case "$version" in *[!0-9]*) continue ;; esac
    if [ ! -d "$download/$version" ]; then
      rm -rf "$path"
      echo "removed version $version, gone from $MODEL_SOURCE"
    fi
  done
  date +%s > "$heartbeat"
}

if $once; then
  sync_once
  exit 0
fi
while true; do
  # Each pass runs in a child process: bash ignores `set -e` inside a
  # function whose status is tested, and a failed pass must stop at its first
  # error. A failure (network, credentials) is logged and retried. Serving
  # goes on with the versions already on disk, and the heartbeat goes stale.
  if ! bash "${BASH_SOURCE[0]}" --once; then
    echo "sync of $MODEL_SOURCE failed; retrying in ${interval}s" >&2
  fi
  sleep "$interval"
done
