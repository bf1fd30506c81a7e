#!/usr/bin/env bash
# Builds a minimal `FROM scratch` image around a binary (registry-node, registrator, demo-web):
#
#   docker/build-image.sh [BINARY] [TAG]
#
#   BINARY  the executable (default: target/debug/registry-node, relative to the workspace)
#   TAG     the image tag   (default: registry-node:dev)
#
# Layout of the image:
#   /bin/<name>                   the binary (ENTRYPOINT), <name> = basename of BINARY; the
#                                 registry-node image also EXPOSEs its ports, CMD ["version"]
#   /lib/..., /lib64/..., ...     exactly the shared libraries `ldd` reports, and the dynamic
#                                 loader, at the paths ldd prints (so the binary's PT_INTERP
#                                 and the loader's default search paths find them unchanged)
#   /data                         empty, for -data-dir=/data
#   /tmp                          empty, mode 1777
#
# Idempotent and quick: the image carries a label with a fingerprint of the binary, the copied
# libraries and this script's layout version; when an image with that tag already carries the
# same fingerprint, nothing is rebuilt. The build context is a temporary directory, removed on
# exit. Exits non-zero with a clear message when docker is missing or its daemon unreachable.
set -euo pipefail

# Bump when the image layout changes, so existing images are rebuilt.
LAYOUT_VERSION=1
LABEL_FINGERPRINT="org.registry-node.fingerprint"
LABEL_BINARY="org.registry-node.binary-sha256"

workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="${1:-$workspace/target/debug/registry-node}"
tag="${2:-registry-node:dev}"

log() { printf 'build-image: %s\n' "$*" >&2; }
die() {
  printf 'build-image: error: %s\n' "$*" >&2
  exit 1
}

[ -f "$binary" ] || die "binary not found: $binary (build it first: cargo build -p registry-node)"
[ -x "$binary" ] || die "binary is not executable: $binary"
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
name="$(basename "$binary")"

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed (needed to build $tag)"
if ! docker_err="$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null)"; then
  die "docker is not reachable (is the daemon running, is DOCKER_HOST right, may this user use it?): ${docker_err:-docker version failed}"
fi

# The shared libraries, one absolute path per line, as ldd reports them ("name => /path (addr)"
# and the loader as "/path (addr)"; linux-vdso has no file). A static binary has none.
libs=()
if ldd_out="$(ldd "$binary" 2>&1)"; then
  if grep -q "not found" <<<"$ldd_out"; then
    die "ldd cannot resolve every library of $binary:"$'\n'"$ldd_out"
  fi
  while IFS= read -r path; do
    [ -n "$path" ] && libs+=("$path")
  done < <(awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }
  ' <<<"$ldd_out" | sort -u)
elif grep -qE "not a dynamic executable|statically linked" <<<"$ldd_out"; then
  log "static binary: no shared libraries to copy"
else
  die "ldd $binary failed: $ldd_out"
fi

binary_sha="$(sha256sum "$binary" | cut -d' ' -f1)"
fingerprint="$(
  {
    echo "layout $LAYOUT_VERSION"
    echo "binary $binary_sha"
    # Only for other binaries, so registry-node's fingerprint (and image) stay as they were.
    [ "$name" = registry-node ] || echo "name $name"
    for lib in "${libs[@]}"; do
      echo "lib $lib $(sha256sum "$lib" | cut -d' ' -f1)"
    done
  } | sha256sum | cut -d' ' -f1
)"

existing="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL_FINGERPRINT\" }}" "$tag" 2>/dev/null || true)"
if [ "$existing" = "$fingerprint" ]; then
  log "$tag is up to date (binary sha256 ${binary_sha:0:12}), nothing to do"
  exit 0
fi

context="$(mktemp -d "${TMPDIR:-/tmp}/$name-image.XXXXXX")"
errfile="$(mktemp "${TMPDIR:-/tmp}/$name-image-err.XXXXXX")"
trap 'rm -rf "$context" "$errfile"' EXIT

log "staging $binary (sha256 ${binary_sha:0:12}) and ${#libs[@]} libraries in $context"
root="$context/rootfs"
mkdir -p "$root/bin" "$root/data" "$root/tmp"
chmod 0755 "$root" "$root/bin" "$root/data"
chmod 1777 "$root/tmp"
cp "$binary" "$root/bin/$name"
chmod 0755 "$root/bin/$name"
for lib in "${libs[@]}"; do
  mkdir -p "$root$(dirname "$lib")"
  # -L: the image gets the file a symlink (e.g. /lib64/ld-linux-x86-64.so.2) points to.
  cp -L "$lib" "$root$lib"
  log "  + $lib"
done

if [ "$name" = registry-node ]; then
  tail='EXPOSE 8300 8301 8301/udp 8302 8302/udp 8500 8600 8600/udp
ENTRYPOINT ["/bin/registry-node"]
CMD ["version"]'
else
  tail="ENTRYPOINT [\"/bin/$name\"]"
fi
cat >"$context/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
LABEL $LABEL_FINGERPRINT="$fingerprint" \\
      $LABEL_BINARY="$binary_sha"
WORKDIR /
$tail
EOF

# Use BuildKit when the buildx plugin is there; otherwise the classic builder (still shipped
# with the engine), instead of failing on "BuildKit is enabled but the buildx component is
# missing".
build=(docker build --tag "$tag" --quiet)
if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi

log "building $tag"
start=$(date +%s)
if ! id="$("${build[@]}" "$context" 2>"$errfile")"; then
  cat "$errfile" >&2
  die "docker build of $tag failed"
fi
size="$(docker image inspect --format '{{.Size}}' "$tag")"
log "built $tag ($id, $((size / 1024 / 1024)) MiB) in $(($(date +%s) - start)) s"
