#!/usr/bin/env python3
"""PyTorch's side of bench/inference.sh: the resident memory of a loaded model, batch-1
latency and batch-64 throughput under torch.no_grad() in eval mode, for LeNet (hubel's
lenet_modern.yaml) and ResNet-20 (hubel's resnet20.yaml: 3x3 stem, three stages of three
basic blocks with batch norm, 1x1 strided projections, global average pooling, 272k
parameters) on 1x32x32 / 1x28x28 inputs as hubel's models take them after their padding.

usage: torch_inference.py lenet|resnet20 THREADS SECONDS
prints: RESULT model=... rss_before_mb=... rss_loaded_mb=... rss_peak_mb=...
        latency_ms_median=... latency_ms_p90=... batch64_img_per_s=...
"""
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_lenet import LeNet5, ResNet20  # the nets of hubel's lenet_modern.yaml and resnet20.yaml


def status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    name, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    torch.set_num_threads(threads)
    before = status_mb("VmRSS:")
    model = (LeNet5("relu") if name == "lenet" else ResNet20(1)).eval()
    shape = (1, 28, 28) if name == "lenet" else (1, 32, 32)
    x = torch.rand(64, *shape) * 255
    with torch.no_grad():
        model(x)
        loaded = status_mb("VmRSS:")
        lat = []
        t0 = time.perf_counter()
        one = x[:1].contiguous()
        while time.perf_counter() - t0 < seconds / 2 or len(lat) < 20:
            a = time.perf_counter()
            model(one)
            lat.append((time.perf_counter() - a) * 1e3)
        lat.sort()
        images, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2 or images < 640:
            model(x)
            images += 64
        rate = images / (time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    print(f"RESULT model={name} params={params} threads={threads} rss_before_mb={before:.1f} "
          f"rss_loaded_mb={loaded:.1f} rss_peak_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} "
          f"latency_ms_median={lat[len(lat) // 2]:.4f} latency_ms_p90={lat[len(lat) * 9 // 10]:.4f} "
          f"batch64_img_per_s={rate:.0f}")


if __name__ == "__main__":
    main()
