#!/usr/bin/env python3
"""Where to damage a checkpoint: prints "label offset" lines, N offsets spread evenly over
the file (superblock, object headers, B-trees, heaps, data) and targeted ones inside the
parameters, the optimizer state, the history, the attributes (step, run id, checksum) and
the experiment text. usage: damage_offsets.py FILE N STEP"""
import re, subprocess, sys, tempfile, os

path, n, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
size = len(data)
out = [("spread%d" % k, k * (size - 4) // max(1, n - 1)) for k in range(n)]

def raw(dataset):
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "x.bin")
        subprocess.run(["h5dump", "-d", dataset, "-b", "LE", "-o", f, path], check=True, stdout=subprocess.DEVNULL)
        return open(f, "rb").read()

for label, ds in (("model_f5_w", "/model/f5/w"), ("optimizer_f5_w", "/optimizer/velocity/f5/w"),
                  ("model_output_b", "/model/output/b"), ("history_train_loss", "/metrics/train_loss")):
    b = raw(ds)
    mid = len(b) // 2 - 8
    at = data.find(b[mid:mid + 16])
    if at >= 0:
        out.append((label, at + 4))

def attr_text(name):
    dump = subprocess.run(["h5dump", "-a", "/" + name, path], capture_output=True, text=True).stdout
    m = re.search(r'\(0\): "([^"]*)"', dump)
    return m.group(1) if m else None

for name in ("run_id", "checksum"):
    t = attr_text(name)
    if t:
        at = data.find(t.encode())
        if at >= 0:
            out.append(("attribute_" + name, at + 2))
at = data.find(b"model:")
if at >= 0:
    out.append(("experiment_text", at + 1))
name_at = data.find(b"step\x00")
if name_at >= 0:
    value = data.find(step.to_bytes(8, "little"), name_at, name_at + 96)
    if value >= 0:
        out.append(("attribute_step", value))
for label, offset in out:
    print(label, offset)
