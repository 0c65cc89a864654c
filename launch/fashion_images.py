#!/usr/bin/env python3
"""Writes Fashion-MNIST (the Debian package's IDX files) as a folder of PNG images, the
layout `hubel convert images --split-dir` reads: OUT/{train,test}/<label>_<name>/<index>.png.
The label prefix keeps the folders' sorted order the labels' order; file names are the
sample's index, zero-padded, so each class keeps the IDX order.

  python3 launch/fashion_images.py /usr/share/datasets/fashion-mnist data/fashion-images [--limit N]
  python3 launch/fashion_images.py SRC OUT --limit 2000 --grouped-idx DIR   (tests: the same
      samples as IDX files, in the folder's order: class by class)
  python3 launch/fashion_images.py SRC OUT --limit 2000 --enlarge 2   (images of varied sizes:
      each side enlarged by its own factor in [1, 2], nearest neighbour, seeded by the index)
No dependencies beyond Python's standard library (PNG written with zlib)."""
import argparse, gzip, os, random, struct, sys, zlib

NAMES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]


def read(src, name):
    for suffix in ("", ".gz"):
        p = os.path.join(src, name + suffix)
        if os.path.exists(p):
            return (gzip.open if suffix else open)(p, "rb").read()
    sys.exit("fashion_images.py: no %s[.gz] in %s" % (name, src))


def png(pixels, w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + pixels[r * w:(r + 1) * w] for r in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--limit", type=int, default=0, help="the first N training and N/5 test images")
    ap.add_argument("--grouped-idx", help="also write these samples as IDX files, class by class")
    ap.add_argument("--enlarge", type=float, default=1, help="each side enlarged by a factor in [1, ENLARGE]")
    a = ap.parse_args()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img, lab = read(a.src, prefix + "-images-idx3-ubyte"), read(a.src, prefix + "-labels-idx1-ubyte")
        n, h, w = struct.unpack(">III", img[4:16])
        if a.limit:
            n = min(n, a.limit if split == "train" else max(1, a.limit // 5))
        order = sorted(range(n), key=lambda i: (lab[8 + i], i))
        for i in order:
            d = os.path.join(a.out, split, "%d_%s" % (lab[8 + i], NAMES[lab[8 + i]]))
            os.makedirs(d, exist_ok=True)
            pixels, ow, oh = img[16 + i * h * w:16 + (i + 1) * h * w], w, h
            if a.enlarge > 1:
                r = random.Random(i * 2 + (split == "test"))
                oh, ow = round(h * r.uniform(1, a.enlarge)), round(w * r.uniform(1, a.enlarge))
                pixels = bytes(pixels[(y * h // oh) * w + x * w // ow] for y in range(oh) for x in range(ow))
            with open(os.path.join(d, "%06d.png" % i), "wb") as f:
                f.write(png(pixels, ow, oh))
        if a.grouped_idx:
            os.makedirs(a.grouped_idx, exist_ok=True)
            with open(os.path.join(a.grouped_idx, prefix + "-images-idx3-ubyte"), "wb") as f:
                f.write(struct.pack(">IIII", 0x803, n, h, w) + b"".join(img[16 + i * h * w:16 + (i + 1) * h * w] for i in order))
            with open(os.path.join(a.grouped_idx, prefix + "-labels-idx1-ubyte"), "wb") as f:
                f.write(struct.pack(">II", 0x801, n) + bytes(lab[8 + i] for i in order))
        print("%s: %d images in %s" % (split, n, os.path.join(a.out, split)))


main()
