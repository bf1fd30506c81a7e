#!/usr/bin/env bash
# Builds, without any container registry, every image docker-compose.yml needs, under the
# names the compose file uses, so `docker-compose up --no-build` (or `docker compose up`) runs
# it unchanged:
#
#   docker/build-demo-images.sh [--release] [--no-cargo]
#
#   --release    build and package target/release binaries (default: target/debug, which
#                `cargo test` builds anyway; a release build takes long on a small machine)
#   --no-cargo   do not run cargo; package the binaries already in target/<profile>
#                ($CARGO_TARGET_DIR/<profile> when set)
#
# Images:
#   registry-node:dev, registrator:dev, demo-web:dev
#       FROM scratch: the binary + exactly the shared libraries ldd reports (build-image.sh)
#   registry-demo/nginx-base:bookworm
#       a minimal Debian bookworm (debootstrap --variant=minbase) with nginx-light from
#       Debian's archive, `docker import`ed: the local stand-in for debian:bookworm-slim +
#       `apt-get install nginx-light` (docker/Dockerfile's nginx-base stage). Made once: the
#       image carries a fingerprint of its recipe and is kept while the recipe is unchanged
#       (debootstrap takes minutes; it needs root and the `debootstrap` package).
#   templater-nginx:dev
#       the base + templater + templates/ + docker/nginx/nginx.conf; templater renders the
#       upstream block and supervises nginx (`-exec nginx`, SIGHUP on change). Rebuilt only
#       when one of its inputs changed (fingerprint label, like build-image.sh).
#
# Idempotent and quick when nothing changed (cargo's no-op build plus four label reads).
# Environment: DEMO_DEBIAN_MIRROR (default http://deb.debian.org/debian), CARGO (default cargo).
set -euo pipefail

# Bump when the base recipe or the templater-nginx layout changes, so images are rebuilt.
BASE_RECIPE_VERSION=1
NGINX_LAYOUT_VERSION=1
LABEL_FINGERPRINT="org.registry-node.fingerprint"
BASE_TAG="registry-demo/nginx-base:bookworm"
SUITE="bookworm"
BASE_PACKAGES="nginx-light"
MIRROR="${DEMO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=debug
run_cargo=1
for arg in "$@"; do
  case "$arg" in
    --release) profile=release ;;
    --no-cargo) run_cargo=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      printf 'build-demo-images: unknown argument %s (see --help)\n' "$arg" >&2
      exit 2
      ;;
  esac
done

log() { printf 'build-demo-images: %s\n' "$*" >&2; }
die() {
  printf 'build-demo-images: error: %s\n' "$*" >&2
  exit 1
}

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
if ! docker_err="$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null)"; then
  die "docker is not reachable (is the daemon running, is DOCKER_HOST right, may this user use it?): ${docker_err:-docker version failed}"
fi

label_of() {
  docker image inspect --format "{{ index .Config.Labels \"$LABEL_FINGERPRINT\" }}" "$1" 2>/dev/null || true
}

bin_dir="${CARGO_TARGET_DIR:-$workspace/target}/$profile"
if [ "$run_cargo" = 1 ]; then
  cargo_flags=()
  [ "$profile" = release ] && cargo_flags+=(--release)
  log "cargo build ${cargo_flags[*]} -p registry-node -p registrator -p templater -p demo-web"
  (cd "$workspace" && "${CARGO:-cargo}" build "${cargo_flags[@]}" \
    -p registry-node -p registrator -p templater -p demo-web) ||
    die "cargo build failed"
fi
for bin in registry-node registrator templater demo-web; do
  [ -x "$bin_dir/$bin" ] || die "$bin_dir/$bin is missing (run without --no-cargo, or cargo build -p $bin)"
done

# --- the three FROM scratch images --------------------------------------------------------
for bin in registry-node registrator demo-web; do
  "$workspace/docker/build-image.sh" "$bin_dir/$bin" "$bin:dev"
done

# --- the Debian + nginx base --------------------------------------------------------------
base_fingerprint="$(
  printf 'recipe %s\nsuite %s\nvariant minbase\npackages %s\n' \
    "$BASE_RECIPE_VERSION" "$SUITE" "$BASE_PACKAGES" | sha256sum | cut -d' ' -f1
)"
if [ "$(label_of "$BASE_TAG")" = "$base_fingerprint" ]; then
  log "$BASE_TAG is up to date, nothing to do"
else
  command -v debootstrap >/dev/null 2>&1 ||
    die "$BASE_TAG is missing and debootstrap is not installed (apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || die "$BASE_TAG is missing: debootstrap needs root (run this script as root once)"
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/nginx-base.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap $SUITE (minbase + $BASE_PACKAGES) from $MIRROR into $rootfs; this takes a few minutes"
  start=$(date +%s)
  if ! debootstrap --variant=minbase --include="${BASE_PACKAGES// /,}" "$SUITE" "$rootfs" "$MIRROR" \
    >"$rootfs.log" 2>&1; then
    tail -n 30 "$rootfs.log" >&2
    die "debootstrap failed (full log: $rootfs.log)"
  fi
  rm -f "$rootfs.log"
  # What debian:bookworm-slim also leaves out: caches, package lists, docs, man pages.
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/etc/nginx/sites-enabled/default "$rootfs"/etc/hostname
  # Docker writes these at run time; the build host's copies must not leak into the image.
  : >"$rootfs/etc/resolv.conf"
  printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$rootfs/etc/apt/sources.list"
  log "docker import $BASE_TAG"
  tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL $LABEL_FINGERPRINT=$base_fingerprint" \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase --include=$BASE_PACKAGES $SUITE" \
    - "$BASE_TAG" >/dev/null || die "docker import of $BASE_TAG failed"
  rm -rf "$rootfs"
  trap - EXIT
  size="$(docker image inspect --format '{{.Size}}' "$BASE_TAG")"
  log "built $BASE_TAG ($((size / 1024 / 1024)) MiB) in $(($(date +%s) - start)) s"
fi

# --- templater + nginx --------------------------------------------------------------------
# The inputs of the image, in a fixed order; their hashes make the fingerprint.
nginx_inputs=(
  "$bin_dir/templater"
  "$workspace/docker/nginx/nginx.conf"
  "$workspace/templates/nginx.ctmpl"
  "$workspace/templates/nginx.hbs"
  "$workspace/templates/haproxy.ctmpl"
)
for f in "${nginx_inputs[@]}"; do
  [ -f "$f" ] || die "missing input of templater-nginx:dev: $f"
done
nginx_fingerprint="$(
  {
    echo "layout $NGINX_LAYOUT_VERSION"
    echo "base $(docker image inspect --format '{{.Id}}' "$BASE_TAG")"
    for f in "${nginx_inputs[@]}"; do
      echo "$(basename "$f") $(sha256sum "$f" | cut -d' ' -f1)"
    done
  } | sha256sum | cut -d' ' -f1
)"
if [ "$(label_of templater-nginx:dev)" = "$nginx_fingerprint" ]; then
  log "templater-nginx:dev is up to date, nothing to do"
  exit 0
fi

context="$(mktemp -d "${TMPDIR:-/tmp}/templater-nginx.XXXXXX")"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/templates"
cp "$bin_dir/templater" "$context/templater"
cp "$workspace/docker/nginx/nginx.conf" "$context/nginx.conf"
cp "$workspace"/templates/nginx.ctmpl "$workspace"/templates/nginx.hbs \
  "$workspace"/templates/haproxy.ctmpl "$context/templates/"
# The same layer as docker/Dockerfile's templater-nginx stage, on the imported base.
cat >"$context/Dockerfile" <<EOF
FROM $BASE_TAG
COPY templater /usr/local/bin/templater
COPY nginx.conf /etc/nginx/nginx.conf
COPY templates/ /etc/nginx/templates/
LABEL $LABEL_FINGERPRINT="$nginx_fingerprint"
EXPOSE 8888
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/templater"]
CMD ["-consul-addr", "registry-client:8500", \\
     "-template", "/etc/nginx/templates/nginx.ctmpl:/etc/nginx/conf.d/default.conf", \\
     "-exec", "nginx", "-exec-reload-signal", "SIGHUP", "-exec-kill-signal", "SIGQUIT", \\
     "-log-level", "info"]
EOF

if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi
log "building templater-nginx:dev"
start=$(date +%s)
if ! out="$(docker build --quiet --tag templater-nginx:dev "$context" 2>&1)"; then
  printf '%s\n' "$out" >&2
  die "docker build of templater-nginx:dev failed"
fi
size="$(docker image inspect --format '{{.Size}}' templater-nginx:dev)"
log "built templater-nginx:dev ($((size / 1024 / 1024)) MiB) in $(($(date +%s) - start)) s"
