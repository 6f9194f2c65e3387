#!/usr/bin/env sh
# pip alone: builds the sdist and, from it, the wheel; installs the wheel with constraints.txt into a fresh
# virtual environment outside the checkout; there, runs the CC job on a generated sample crawl (exit 0,
# documents kept), with exactly one fastText module (fasttext-numpy2-wheel's), and checks that
# --lm-models without the perplexity extra is a usage error naming the extra.
#   tools/check_wheel.sh PYTHON    (a Python with `build`, e.g. .venv/bin/python)
set -eu
python=$1
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

"$python" -m build --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; exit 1; }
wheel=$(ls "$work"/dist/*.whl)
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --disable-pip-version-check -c "$root/constraints.txt" "$wheel" >"$work/pip.log" 2>&1 ||
  { tail -n 40 "$work/pip.log" >&2; exit 1; }
echo "check_wheel: built and installed $(basename "$wheel") in $(($(date +%s) - start)) s"

cd "$work"  # nothing of the checkout is importable from here
py="$work/venv/bin/python"
"$py" - "$wheel" <<'EOF'
import importlib.metadata
import os
import sys
import zipfile

import fasttext

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
for member in ("pipeline/resources/lid.176.ftz", "pipeline/resources/lid.176.ftz.NOTICE"):
    assert member in names, f"{member} is not in the wheel"
owners = sorted(d.metadata["Name"] for d in importlib.metadata.distributions()
                if any(f.parts[0] == "fasttext" for f in d.files or ()))
assert owners == ["fasttext-numpy2-wheel"], f"the fasttext module is installed by {owners}"
assert hasattr(fasttext, "train_supervised"), "the fasttext module cannot train"
from smallgiant.samples.crawl import write_sample  # the installed package's sample crawl generator
os.makedirs("crawl")
write_sample("crawl/CC-SAMPLE-00000.warc.wet.gz")
EOF

"$work/venv/bin/smallgiant" pipeline cc --input 'crawl/*.warc.wet.gz' --output out/cc >"$work/cc.log" 2>&1 ||
  { tail -n 40 "$work/cc.log" >&2; echo "check_wheel: pipeline cc failed" >&2; exit 1; }
"$py" -c '
import glob
import pyarrow.parquet as pq
rows = sum(pq.read_metadata(f).num_rows for f in glob.glob("out/cc/docs/*.parquet"))
assert rows > 0, "pipeline cc kept no document"
print(f"check_wheel: pipeline cc kept {rows} documents")'

mkdir lm
rc=0
"$work/venv/bin/smallgiant" pipeline cc --input 'crawl/*.warc.wet.gz' --output out/lm --lm-models lm \
  >"$work/lm.log" 2>&1 || rc=$?
if [ "$rc" != 2 ] || ! grep -q "smallgiant\[perplexity\]" "$work/lm.log"; then
  cat "$work/lm.log" >&2
  echo "check_wheel: --lm-models without kenlm should exit 2 naming the perplexity extra (exit $rc)" >&2
  exit 1
fi
echo "check_wheel: passed in $(($(date +%s) - start)) s"
