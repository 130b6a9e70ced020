"""Pillow's side of `cargo bench -p cft-benches --bench image_pipeline`: the same nine bundled
photos, one core, the same steps (decode = Image.open + convert("RGB"); Pillow's draft() for
the reduced DCT scale, which also uses a faster IDCT; resize((S, S), BILINEAR); ToTensor + Normalize). Prints ms per 9 photos.
    python3 benches/pil_pipeline.py"""
import glob
import json
import os
import time

from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
files = sorted(glob.glob(os.path.join(here, "..", "datasets", "images", "*.jpg")))


def timeit(fn, reps=20):
    fn()
    best = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    best.sort()
    return 1000 * best[len(best) // 2]


def decode():
    return [Image.open(p).convert("RGB") for p in files]


def reduced(size):
    out = []
    for p in files:
        im = Image.open(p)
        im.draft("RGB", (size, size))
        out.append(im.convert("RGB"))
    return out


decoded = decode()
res = {"pillow": Image.__version__, "images": len(files), "decode_exact_ms": timeit(decode)}
for s in (224, 448):
    res[f"decode_reduced_for_{s}_ms"] = timeit(lambda: reduced(s))
    res[f"resize_to_{s}_ms"] = timeit(lambda: [im.resize((s, s), Image.BILINEAR) for im in decoded])
    try:
        import torchvision.transforms.functional as F
        small = [im.resize((s, s), Image.BILINEAR) for im in decoded]
        res[f"to_tensor_{s}_ms"] = timeit(lambda: [F.normalize(F.to_tensor(im), [0.485, 0.456, 0.406],
                                                               [0.229, 0.224, 0.225]) for im in small])
    except ImportError:
        pass
print(json.dumps(res))
