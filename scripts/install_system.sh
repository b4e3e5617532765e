#!/usr/bin/env bash
# Installs what Kuzet's tests and development services need on Debian 12, without Docker:
#   1. Debian packages (ffmpeg, GStreamer RTSP server + python3-gi, PostgreSQL, Java 17, Maven, Chromium, ...)
#   2. Apache Kafka's jars from Maven Central (deploy/kafka/pom.xml) into ~/.cache/kuzet/kafka-<v>/libs
#   3. SeaweedFS's `weed` binary, built from the Go module proxy at a pinned version, into ~/.cache/kuzet/bin
# Idempotent and cached: apt runs only when a package is missing, Maven only when the pom changed,
# the Go build only when the pinned SeaweedFS version changed. Run as root (or with sudo available).
# Only Debian's mirrors, Maven Central and the Go module proxy are contacted.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KUZET_CACHE_DIR:-$HOME/.cache/kuzet}"

# SeaweedFS 4.53 (the module has replace directives, so `go install mod@v` refuses it: build in its module dir).
WEED_MODULE="github.com/seaweedfs/seaweedfs"
WEED_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
WEED_RELEASE="4.53"
# Go toolchain used when the machine has no Go new enough for that module (its go.mod says go 1.26.6).
GO_MIN="1.26.6"
GO_VERSION="1.26.8"
GO_SHA256_amd64="30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7"

APT_PACKAGES=(
  ca-certificates curl unzip git
  ffmpeg
  python3 python3-venv python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0
  gstreamer1.0-rtsp gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  postgresql postgresql-client
  openjdk-17-jre-headless maven
  chromium fonts-liberation
)

log() { printf '[install_system] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------- 1. Debian packages
install_apt() {
  local missing=() pkg status
  while read -r pkg status; do
    [ "$status" = "installed" ] || missing+=("$pkg")
  done < <(for p in "${APT_PACKAGES[@]}"; do
             printf '%s %s\n' "$p" "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || echo missing)"
           done)
  if [ "${#missing[@]}" -eq 0 ]; then
    log "Debian packages: all present"
    return
  fi
  log "Debian packages: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------- 2. Kafka jars
install_kafka() {
  local pom="$REPO/deploy/kafka/pom.xml" version libs want tmp
  version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom" | head -1)"
  libs="$CACHE/kafka-$version/libs"
  want="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ -f "$libs/.pom.sha256" ] && [ "$(cat "$libs/.pom.sha256")" = "$want" ] && ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1; then
    log "Kafka $version jars: cached in $libs"
    return
  fi
  log "Kafka $version jars: fetching from Maven Central"
  mkdir -p "$CACHE/kafka-$version"
  tmp="$(mktemp -d "$CACHE/kafka-$version/.libs.XXXXXX")"
  cp "$pom" "$tmp/pom.xml"   # build outside the repository: Maven writes nothing into the checkout
  if ! (cd "$tmp" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$tmp/libs" \
          -DincludeScope=runtime) > "$tmp/mvn.log" 2>&1; then
    cat "$tmp/mvn.log" >&2
    log "Maven failed (above)"
    exit 1
  fi
  echo "$want" > "$tmp/libs/.pom.sha256"
  rm -rf "$libs.old"
  if [ -d "$libs" ]; then mv "$libs" "$libs.old"; fi
  mv "$tmp/libs" "$libs"
  rm -rf "$libs.old" "$tmp"
  log "Kafka $version jars: $(ls "$libs" | wc -l) files in $libs"
}

# ---------------------------------------------------------------- 3. SeaweedFS
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

find_go() {
  local candidate v
  for candidate in "$CACHE/go-$GO_VERSION/bin/go" "$(command -v go || true)" /usr/local/go/bin/go; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    v="$("$candidate" env GOVERSION 2>/dev/null | sed 's/^go//')"
    if [ -n "$v" ] && version_ge "$v" "$GO_MIN"; then
      echo "$candidate"
      return
    fi
  done
  # No usable Go: the toolchain itself is a module on the Go module proxy.
  local arch want zip dest
  arch="$(dpkg --print-architecture)"
  want="GO_SHA256_$arch"
  if [ -z "${!want:-}" ]; then
    log "no Go >= $GO_MIN and no pinned toolchain checksum for $arch: install Go $GO_MIN+ and re-run"
    exit 1
  fi
  log "Go: fetching toolchain go$GO_VERSION ($arch) from the Go module proxy"
  dest="$CACHE/go-$GO_VERSION"
  zip="$(mktemp "$CACHE/go-toolchain.XXXXXX.zip")"
  curl -fsSL --retry 3 -o "$zip" \
    "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip"
  echo "${!want}  $zip" | sha256sum -c --quiet - || { log "Go toolchain checksum mismatch"; rm -f "$zip"; exit 1; }
  rm -rf "$dest" "$dest.tmp"
  mkdir -p "$dest.tmp"
  unzip -q "$zip" -d "$dest.tmp"
  mv "$dest.tmp/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch" "$dest"
  rm -rf "$dest.tmp" "$zip"
  # Module zips carry no file modes.
  chmod +x "$dest"/bin/* "$dest"/pkg/tool/*/*
  echo "$dest/bin/go"
}

install_weed() {
  local bin="$CACHE/bin/weed" stamp="$CACHE/bin/weed.version" go dir tmpd
  if [ -x "$bin" ]; then
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$WEED_VERSION" ]; then
      log "SeaweedFS $WEED_RELEASE: cached at $bin"
      return
    fi
    if "$bin" version 2>/dev/null | grep -q " $WEED_RELEASE "; then
      echo "$WEED_VERSION" > "$stamp"
      log "SeaweedFS $WEED_RELEASE: cached at $bin"
      return
    fi
  fi
  go="$(find_go)"
  log "SeaweedFS $WEED_RELEASE: building with $("$go" env GOVERSION) (several minutes on 2 cores)"
  tmpd="$(mktemp -d)"
  # Outside any module; GOTOOLCHAIN=local: never switch toolchains behind our back.
  dir="$(cd "$tmpd" && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" mod download -json "$WEED_MODULE@$WEED_VERSION" \
          | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
  rmdir "$tmpd"
  if [ -z "$dir" ] || [ ! -d "$dir/weed" ]; then
    log "go mod download did not yield the SeaweedFS source directory"
    exit 1
  fi
  mkdir -p "$CACHE/bin"
  (cd "$dir" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$go" build -trimpath -ldflags="-s -w" -o "$bin.tmp" ./weed)
  mv "$bin.tmp" "$bin"
  echo "$WEED_VERSION" > "$stamp"
  log "SeaweedFS: $("$bin" version 2>/dev/null | head -1)"
}

main() {
  mkdir -p "$CACHE"
  install_apt
  install_kafka
  install_weed
  log "done (cache: $CACHE)"
}

main "$@"
