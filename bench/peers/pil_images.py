#!/usr/bin/env python3
"""The peer of bench_images run: the same files through PIL (torchvision's training
pipeline without torch): open, RGB, RandomResizedCrop(SIZE) (scale 0.08-1, ratio 3/4-4/3,
bilinear), random horizontal flip, ColorJitter(brightness 0.4, contrast 0.4), to float32
values in [0, 1] with numpy (as ToTensor does). Prints images per second on 1 process and on all cores
(a multiprocessing pool, as torch's DataLoader workers).

  python3 bench/peers/pil_images.py DIR SIZE [SECONDS]"""
import math, multiprocessing as mp, os, random, sys, time
import numpy as np
from PIL import Image, ImageEnhance


def resized_crop(img, size, rng):
    w, h = img.size
    area = w * h
    for _ in range(10):
        a = area * rng.uniform(0.08, 1.0)
        r = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return img.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))
    return img.resize((size, size), Image.BILINEAR)


def one(path, size, rng):
    img = Image.open(path).convert("RGB")
    img = resized_crop(img, size, rng)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.4))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.4))
    values = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return values.size


def worker(args):
    files, size, seconds, seed = args
    rng = random.Random(seed)
    t0, n = time.time(), 0
    while time.time() - t0 < seconds:
        one(files[n % len(files)], size, rng)
        n += 1
    return n, time.time() - t0


def main():
    d, size = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    files = sorted(os.path.join(d, f) for f in os.listdir(d))
    n, t = worker((files, size, seconds, 1))
    print("PIL 1 process: %.0f images/s" % (n / t))
    cores = os.cpu_count() or 1
    with mp.Pool(cores) as pool:
        res = pool.map(worker, [(files, size, seconds, s) for s in range(cores)])
    print("PIL %d processes: %.0f images/s" % (cores, sum(n / t for n, t in res)))


main()
