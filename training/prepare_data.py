#!/usr/bin/env python3
"""Builds the drum one-shot training set from Debian's hydrogen-drumkits package.

Every kit under /usr/share/hydrogen/data/drumkits/*/ has a drumkit.xml naming its
instruments and their sample files (one per velocity layer). Instruments are mapped to
drum classes by name (then by file name); instruments of no class (hand percussion,
effects, unnamed slots) and rolls are skipped; a file used by several instruments is kept
once. Each sample is prepared as docs/MODEL_SPEC.md §6 describes:

  mono mix -> resample to sr (scipy.signal.resample_poly, polyphase Kaiser FIR)
  -> leading silence trimmed (first sample above 1 % of the peak, 2 ms kept before it)
  -> mean subtracted -> zero-padded or cropped to tar_l
  -> 50 Hz high-pass biquad (RBJ cookbook, Q = 1/sqrt(2), the torchaudio highpass_biquad
     default) -> peak normalised to 0.9.

The split is per sample and per class (stratified), seeded. Output: one .npz with
audio [N, tar_l] float32, labels [N], split [N] (0 train, 1 test), paths, classes;
plus class counts printed and saved as JSON beside it.

    python3 training/prepare_data.py [--out training/data/drums16k.npz]
"""
import argparse
import glob
import json
import math
import os
import re
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction

import numpy as np
from scipy import signal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audio_io import read_audio  # noqa: E402

DRUMKITS = "/usr/share/hydrogen/data/drumkits"

# Class names follow the authors' drum model where they overlap (Clap, Cowbell,
# Cymb_Crash_Ride, Hat, Kick, Snare, Tom) plus Rim (side stick / rim click).
CLASSES = ["Clap", "Cowbell", "Cymb_Crash_Ride", "Hat", "Kick", "Rim", "Snare", "Tom"]

# Ordered rules: the first pattern that matches the lower-cased name gives the class.
RULES = [
    (r"\broll\b|emptysample|finger snap", None),  # not drum one-shots
    (r"rimshot|rim shot", "Snare"),           # a snare hit with the rim
    (r"cowbell", "Cowbell"),
    (r"clap", "Clap"),
    (r"kick|bass ?drum|\bbd", "Kick"),
    (r"snare", "Snare"),
    (r"hi-?hat|\bhat\b|hat|\bhh|hhat", "Hat"),
    (r"\btom|floortom|pearltom", "Tom"),
    (r"crash|ride|cymbal|china|splash", "Cymb_Crash_Ride"),
    (r"side ?stick|rim ?click|\bstick\b|\brim\b|\brs_", "Rim"),
]


def classify(text):
    t = text.lower()
    for pattern, cls in RULES:
        if re.search(pattern, t):
            return cls, True
    return None, False


def instrument_class(name, filename):
    """Class from the instrument name, else from the file name, else None."""
    if name and not name.lower().startswith("sample:"):
        cls, matched = classify(name)
        if matched:
            return cls
    cls, matched = classify(os.path.splitext(filename)[0].replace("_", " "))
    return cls if matched else None


# Kits left out by default: their share-alike licences (CC-BY-SA-3.0) cannot be combined
# with the GPL-2 of most other kits in one derived work, so a model trained on both could
# not be distributed under one licence (see models/README.md, Licence).
EXCLUDED_KITS = ("BJA_Pacific", "circAfrique v4")


def scan_kits(root=DRUMKITS, exclude=EXCLUDED_KITS):
    """Returns a list of (path, class, kit, instrument) without duplicates."""
    items, seen = [], set()
    for xml_path in sorted(glob.glob(os.path.join(root, "*", "drumkit.xml"))):
        kit_dir = os.path.dirname(xml_path)
        if os.path.basename(kit_dir) in exclude:
            continue
        tree = ET.parse(xml_path).getroot()
        ns = tree.tag.split("}")[0] + "}" if tree.tag.startswith("{") else ""
        for ins in tree.iter(ns + "instrument"):
            name = (ins.findtext(ns + "name") or "").strip()
            for fn_el in ins.iter(ns + "filename"):
                fn = (fn_el.text or "").strip()
                if not fn:
                    continue
                path = os.path.realpath(os.path.join(kit_dir, fn))
                if path in seen or not os.path.isfile(path):
                    continue
                cls = instrument_class(name, fn)
                if cls is None:
                    continue
                seen.add(path)
                items.append((path, cls, os.path.basename(kit_dir), name))
    return items


def highpass_biquad(x, sr, cutoff=50.0, q=1.0 / math.sqrt(2.0)):
    w0 = 2.0 * math.pi * cutoff / sr
    alpha = math.sin(w0) / (2.0 * q)
    cw = math.cos(w0)
    b = np.array([(1 + cw) / 2, -(1 + cw), (1 + cw) / 2])
    a = np.array([1 + alpha, -2 * cw, 1 - alpha])
    return signal.lfilter(b / a[0], a / a[0], x)


def prepare(x, sr_in, sr, tar_l, peak=0.9, trim_db_frac=0.01, preroll_s=0.002):
    """One file's samples [frames, channels] -> float32 [tar_l], or None if silent."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr_in != sr:
        f = Fraction(sr, sr_in).limit_denominator(1000)
        x = signal.resample_poly(x, f.numerator, f.denominator)
    amax = np.max(np.abs(x)) if x.size else 0.0
    if amax <= 1e-6:
        return None
    start = int(np.argmax(np.abs(x) > trim_db_frac * amax))
    x = x[max(0, start - int(preroll_s * sr)):]
    x = x - x.mean()
    if x.size >= tar_l:
        x = x[:tar_l]
    else:
        x = np.pad(x, (0, tar_l - x.size))
    x = highpass_biquad(x, sr)
    amax = np.max(np.abs(x))
    if amax <= 1e-6:
        return None
    return (x * (peak / amax)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=DRUMKITS)
    ap.add_argument("--out", default=os.path.join(here, "data", "drums16k.npz"))
    ap.add_argument("--sr", type=int, default=16000)
    ap.add_argument("--l_grain", type=int, default=1024)
    ap.add_argument("--n_grains", type=int, default=41)
    ap.add_argument("--test_frac", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--exclude_kits", default=",".join(EXCLUDED_KITS),
                    help="comma-separated kit folder names to leave out (default: the "
                    "CC-BY-SA kits, see EXCLUDED_KITS)")
    args = ap.parse_args()
    exclude = tuple(k for k in args.exclude_kits.split(",") if k)

    if not os.path.isdir(args.root):
        sys.exit("no drum kits at %s: install the Debian package hydrogen-drumkits" % args.root)
    tar_l = (args.n_grains + 3) * args.l_grain // 4
    items = scan_kits(args.root, exclude)
    audio, labels, paths = [], [], []
    for path, cls, kit, name in items:
        x, sr_in = read_audio(path)
        y = prepare(x, sr_in, args.sr, tar_l)
        if y is None:
            continue
        audio.append(y)
        labels.append(CLASSES.index(cls))
        paths.append(os.path.relpath(path, args.root))
    audio = np.stack(audio)
    labels = np.array(labels, dtype=np.int64)

    rng = np.random.default_rng(args.seed)
    split = np.zeros(len(labels), dtype=np.int64)
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = max(1, int(round(args.test_frac * idx.size))) if idx.size >= 4 else 0
        split[idx[:n_test]] = 1

    counts = {}
    print("%-16s %6s %6s %6s" % ("class", "train", "test", "total"))
    for c, name in enumerate(CLASSES):
        tr = int(np.sum((labels == c) & (split == 0)))
        te = int(np.sum((labels == c) & (split == 1)))
        counts[name] = {"train": tr, "test": te}
        print("%-16s %6d %6d %6d" % (name, tr, te, tr + te))
    print("%-16s %6d %6d %6d" % ("all", int(np.sum(split == 0)), int(np.sum(split == 1)), len(labels)))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, audio=audio, labels=labels, split=split,
                        paths=np.array(paths), classes=np.array(CLASSES),
                        sr=args.sr, l_grain=args.l_grain, n_grains=args.n_grains, seed=args.seed)
    meta = {"classes": CLASSES, "counts": counts, "sr": args.sr, "tar_l": tar_l,
            "l_grain": args.l_grain, "n_grains": args.n_grains, "seed": args.seed,
            "test_frac": args.test_frac, "n_files": len(labels),
            "excluded_kits": list(exclude),
            "kits": sorted({p.split(os.sep)[0] for p in paths}),
            "files": [{"path": p, "class": CLASSES[l], "split": "test" if s else "train"}
                      for p, l, s in zip(paths, labels.tolist(), split.tolist())]}
    with open(os.path.splitext(args.out)[0] + "_counts.json", "w") as f:
        json.dump(meta, f, indent=1)
    print("wrote", args.out, audio.shape)


if __name__ == "__main__":
    main()
