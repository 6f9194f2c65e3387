#!/usr/bin/env sh
# Builds KenLM's lmplz and build_binary (the estimator behind the perplexity filter) from the source
# archive of the `kenlm` package on PyPI, into the virtual environment's bin/.
#   tools/build_kenlm.sh VERSION VENV
set -eu
version=$1
venv=$2
deps="libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev cmake g++"
if ! dpkg -s $deps >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $deps >/dev/null
  else
    echo "KenLM needs: sudo apt-get install $deps" >&2
    exit 1
  fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/pip" download --quiet --no-deps -d "$work" "kenlm==$version"
tar xzf "$work/kenlm-$version.tar.gz" -C "$work"
log="$work/build.log"
if ! { cmake -S "$work/kenlm-$version" -B "$work/build" -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)"; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "building KenLM failed" >&2
  exit 1
fi
cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$venv/bin/"
