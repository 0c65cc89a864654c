#!/usr/bin/env bash
# The documentation cannot drift from the code: every ```yaml snippet of README.md and
# docs/*.md runs (a whole experiment as it is; a part, such as a data or checkpoint
# section, in place of that section of a small LeNet experiment) for two steps with
# `hubel train` in a directory holding data/fashion-mnist.h5 (real Fashion-MNIST, a
# part of it, also as encoded PNGs in data/fashion-encoded.h5); every `hubel VERB ... --option` a page shows names a verb and options that
# `hubel VERB --help` lists.
# usage: docs_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mkdir -p "$T/work/data"
fashion 2000 "$T/work/data/fashion-mnist.h5" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }
# (docs/data.md's encoded images: Fashion-MNIST as PNG files, stored as they are)
python3 "$SRC/launch/fashion_images.py" /usr/share/datasets/fashion-mnist "$T/fashion" --limit 500 > /dev/null &&
  "$HUBEL" convert images "$T/fashion" "$T/work/data/fashion-encoded.h5" --split-dir --encoded > /dev/null ||
  { echo "FAIL: converting Fashion-MNIST's PNGs"; exit 1; }
cat > "$T/base.yaml" <<'YAML'
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, name: c1, filters: 4, kernel: 5, padding: 2, activation: relu}
    - {type: maxpool2d, kernel: 2}
    - {type: flatten}
    - {type: dense, name: out, units: 10}
  loss: softmax_cross_entropy
data: {file: data/fashion-mnist.h5, train: train, test: test, normalize: file}
optimizer: {type: sgd, lr: 0.02, momentum: 0.9}
train: {epochs: 1, batch: 32, seed: 1}
YAML
# Writes each snippet, completed from the base experiment, as $T/work/N.yaml (beside data/:
# relative paths in an experiment are relative to its file) with a
# first comment line naming its page.
python3 - "$T/base.yaml" "$T/work" "$SRC" "$SRC/README.md" "$SRC"/docs/*.md <<'PY'
import os, re, sys
base_text, out, src, pages = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], sys.argv[4:]
def sections(text):  # top-level key -> its lines
    secs, key = {}, None
    for line in text.split("\n"):
        m = re.match(r"^([a-z_]+):", line)
        if m:
            key = m.group(1)
            secs[key] = []
        if key is not None and line.strip():
            secs[key].append(line)
    return secs
base = sections(base_text)
n = 0
for page in pages:
    for m in re.finditer(r"^```yaml\n(.*?)^```", open(page).read(), re.S | re.M):
        snippet = sections(m.group(1))
        if not snippet:
            sys.exit("%s: a yaml snippet without top-level sections" % page)
        merged = dict(base)
        if "model" in snippet and "data" not in snippet and "input: [2]" in "\n".join(snippet["model"]):
            merged.pop("data")
        merged.update(snippet)
        if "model" not in snippet and "data" in snippet:
            # The base model takes the snippet data's sample shape: a synthetic shape, or
            # Fashion-MNIST's 28 x 28 with the snippet's padding.
            data = "\n".join(snippet["data"])
            shape = re.search(r"shape: \[([0-9, ]+)\]", data)
            pad = re.search(r"\bpad: (\d+)", data)
            size = 28 + 2 * int(pad.group(1)) if pad else 28
            shape = shape.group(1) if shape else "1, %d, %d" % (size, size)
            merged["model"] = [l.replace("input: [1, 28, 28]", "input: [%s]" % shape) for l in merged["model"]]
        n += 1
        with open(os.path.join(out, "%02d.yaml" % n), "w") as f:
            f.write("# %s, snippet %s\n" % (os.path.relpath(page, src), m.group(1).split("\n")[0][:60]))
            for lines in merged.values():
                f.write("\n".join(lines) + "\n")
print(n)
PY
count=$(ls "$T"/work/*.yaml | wc -l)
[ "$count" -ge 6 ] || fail "only $count yaml snippets found"
for f in "$T"/work/*.yaml; do
  out=$(cd "$T/work" && timeout -k 5 120 "$HUBEL" train "$f" --set train.max_steps=2 --threads 1 --run-dir "$T/runs/$(basename "$f" .yaml)" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then ok "$(head -1 "$f" | cut -c3-) runs"; else fail "$(head -1 "$f" | cut -c3-): exit $rc"; grep error <<<"$out" | head -3; fi
done

# Commands: each `hubel VERB ...` line of a page; its --options must be the verb's.
python3 - "$SRC/README.md" "$SRC"/docs/*.md > "$T/commands" <<'PY'
import re, sys
for page in sys.argv[1:]:
    for line in open(page):
        for m in re.finditer(r"(?:^|[\s`(])hubel (train|eval|summary|inspect|visualize|convert|predict|export)\b([^`|#\n]*)", line):
            opts = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", m.group(2))))
            print(page.split("/")[-1], m.group(1), " ".join(opts))
PY
verbs=0
while read -r page verb opts; do
  help=$("$HUBEL" "$verb" --help 2>&1)
  [ $? -eq 0 ] || { fail "$page: 'hubel $verb' is not a command"; continue; }
  for o in $opts; do
    grep -q -- "$o\b" <<<"$help" || fail "$page: 'hubel $verb $o': not an option of hubel $verb"
  done
  verbs=$((verbs + 1))
done < "$T/commands"
[ $verbs -ge 15 ] && ok "$verbs documented command lines use real verbs and options" || fail "only $verbs command lines found"

# The experiments the benchmarks and the ready set run point at the repository's data/
# folder, relative to their own folder (as data.file is read): a path that moved breaks
# bench/compare without a word otherwise.
files=0
for f in "$SRC"/bench/experiments/*.yaml "$SRC"/launch/experiments/*.yaml; do
  p=$(sed -n 's/^data: *{.*file: *\([^,} ]*\).*/\1/p' "$f" | head -1)
  [ -n "$p" ] || continue
  r=$(realpath -m "$(dirname "$f")/$p")
  [[ $r == "$(realpath "$SRC")/data/"* ]] || fail "$f: data.file '$p' resolves to $r, outside the repository's data/"
  files=$((files + 1))
done
[ $files -ge 5 ] && ok "$files experiments' data files resolve under data/" || fail "only $files experiments with data files"

[ "$failures" -eq 0 ] || { echo "$failures documentation check(s) failed"; exit 1; }
echo "all documentation checks passed"
