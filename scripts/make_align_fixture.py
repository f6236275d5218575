"""Reference crops for src/faces/align.rs: insightface's `norm_crop`, recomputed.

insightface (python-package/insightface/utils/face_align.py) estimates a similarity with
skimage's SimilarityTransform from the five landmarks to `arcface_dst * size / 112` and
warps with `cv2.warpAffine(img, M, (size, size), borderValue=0.0)`. This script does the
same on a small deterministic RGB image, for size 112 (margin 0: `norm_crop` itself) and
size 224 with margin 0.25 (the template shrunk about the crop centre by 1 / 1.25, the
formula of `align::template`), and writes tests/fixtures/faces/align_fixture.json plus the
PNGs. Needs numpy, opencv-python-headless and scikit-image.

    python3 scripts/make_align_fixture.py
"""

import json
import os

import cv2
import numpy as np
import skimage
from skimage.transform import SimilarityTransform

ARCFACE_DST = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "faces")


def template(size, margin):
    c = size / 2.0
    dst = ARCFACE_DST.astype(np.float64) * (size / 112.0)
    return (c + (dst - c) / (1.0 + margin)).astype(np.float32)


def estimate(src, dst):
    if hasattr(SimilarityTransform, "from_estimate"):  # skimage >= 0.26
        tform = SimilarityTransform.from_estimate(src, dst)
    else:
        tform = SimilarityTransform()
        tform.estimate(src, dst)
    return tform.params[0:2, :]


def image(width=96, height=80):
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 9.0) * np.cos(y / 11.0)
    g = 255 * x / (width - 1)
    b = 255 * y / (height - 1) * 0.6 + 60 * np.cos((x + y) / 7.0) + 40
    img = np.stack([r, g, b], axis=-1)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    img = image()  # RGB
    landmarks = np.array(
        [[31.0, 29.5], [57.25, 25.0], [45.5, 41.75], [35.0, 56.0], [58.5, 52.25]],
        dtype=np.float32,
    )
    cv2.imwrite(os.path.join(OUT, "align_image.png"), img[:, :, ::-1])
    cases = []
    for size, margin, name in [(112, 0.0, "align_112.png"), (224, 0.25, "align_224_m025.png")]:
        dst = template(size, margin)
        m = estimate(landmarks, dst)
        # cv2 is channel-order agnostic; warp the RGB array directly.
        crop = cv2.warpAffine(img, m, (size, size), borderValue=0.0)
        cv2.imwrite(os.path.join(OUT, name), crop[:, :, ::-1])
        cases.append({"size": size, "margin": margin, "matrix": m.tolist(), "crop": name})
    meta = {
        "generator": "scripts/make_align_fixture.py",
        "versions": {"numpy": np.__version__, "cv2": cv2.__version__, "skimage": skimage.__version__},
        "image": "align_image.png",
        "landmarks": landmarks.tolist(),
        "cases": cases,
    }
    with open(os.path.join(OUT, "align_fixture.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
