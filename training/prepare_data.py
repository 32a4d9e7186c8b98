#!/usr/bin/env python3
"""Builds the drum one-shot training set from Debian's hydrogen-drumkits package and
General MIDI soundfonts (fluid-soundfont-gm, musescore-general-soundfont-small).

Soundfonts: every drum kit (bank 128 preset) of each soundfont is rendered with
fluidsynth (reverb and chorus off, 48 kHz float, then resampled like the kit samples),
one note per GM drum key of a class (GM_NOTES) at the velocities --velocities, each in
its own 1.5 s slot ended by "all sound off"; unused keys render silence and are
rejected. Near-duplicates (kits sharing a sample, velocity layers without their own
sample: zero-lag normalised correlation > --dup_corr with a sound of the same class
already kept) are dropped, in every source. Quiet or short sounds are rejected as the
authors did: peak below --min_peak (-60 dBFS) or less than --min_dur s above -30 dB of
the peak.

Licences: every item carries its source and licence (KIT_LICENCES, SOUNDFONTS);
--permissive 1 keeps only MIT / CC0 / CC-BY items: with --merge Rim:Snare, the bundled
model's data set (models/README.md); the default also keeps the GPL kits (the data of the
second bundled model, commit 60be5b6).

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
    python3 training/prepare_data.py --permissive 1 --merge Rim:Snare \\
        --out training/data/drums16k_mit.npz        # the bundled model's data
"""
import argparse
import glob
import json
import math
import os
import re
import subprocess
import struct
import sys
import tempfile
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


# Licences of the hydrogen-drumkits kits (/usr/share/doc/hydrogen-drumkits/copyright).
KIT_LICENCES = {
    "ElectricEmpireKit": "GPL-2+", "HardElectro1": "GPL-2+", "VariBreaks": "GPL-2+",
    "Millo-Drums_v.1": "GPL-2", "Millo_MultiLayered2": "GPL-2", "Millo_MultiLayered3": "GPL-2",
    "ColomboAcousticDrumkit": "GPL-2+", "Gimme A Hand 1.0": "GPL-2",
    "The Black Pearl 1.0": "GPL-2", "ForzeeStereo": "GPL-2",
    "rumpf_kit_z01_h2": "CC-BY-3.0", "Audiophob": "CC0",
    "BJA_Pacific": "CC-BY-SA-3.0", "circAfrique v4": "CC-BY-SA-3.0",
}
PERMISSIVE = ("MIT", "CC0", "CC-BY-3.0")

# Soundfonts: (source name, path, licence, Debian package). FluidR3_GS.sf2 (package
# fluid-soundfont-gs) has a single bank-128 preset, "SFX" (effects, no drum kit): not used.
SOUNDFONTS = [
    ("FluidR3_GM", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "MIT", "fluid-soundfont-gm"),
    ("MuseScore_General_Lite", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "MIT",
     "musescore-general-soundfont-small"),
]
# GM drum keys (channel 10) -> class; other keys (hand percussion, effects) are skipped.
GM_NOTES = {35: "Kick", 36: "Kick", 37: "Rim", 38: "Snare", 40: "Snare", 39: "Clap",
            41: "Tom", 43: "Tom", 45: "Tom", 47: "Tom", 48: "Tom", 50: "Tom",
            42: "Hat", 44: "Hat", 46: "Hat",
            49: "Cymb_Crash_Ride", 51: "Cymb_Crash_Ride", 52: "Cymb_Crash_Ride",
            53: "Cymb_Crash_Ride", 55: "Cymb_Crash_Ride", 57: "Cymb_Crash_Ride",
            59: "Cymb_Crash_Ride", 56: "Cowbell"}
# Bank-128 presets that are not GM drum kits (other key maps): skipped.
SKIP_PRESETS = re.compile(r"metronome|marching|sfx", re.I)
SLOT_S, RENDER_SR = 1.5, 48000


def sf_drum_presets(path):
    """[(program, name)] of the bank-128 presets of an SF2/SF3 file (phdr chunk)."""
    with open(path, "rb") as f:
        data = f.read()

    def chunks(off, end):
        while off + 8 <= end:
            cid = data[off:off + 4]
            sz = struct.unpack("<I", data[off + 4:off + 8])[0]
            yield cid, off + 8, sz
            off += 8 + sz
    for cid, o, sz in chunks(12, len(data)):
        if cid == b"LIST" and data[o:o + 4] == b"pdta":
            for c2, o2, s2 in chunks(o + 4, o + sz):
                if c2 == b"phdr":
                    out = []
                    for i in range(s2 // 38 - 1):  # the last record is the terminal EOP
                        r = data[o2 + i * 38:o2 + (i + 1) * 38]
                        name = r[:20].split(b"\0")[0].decode("latin1").strip()
                        prog, bank = struct.unpack("<HH", r[20:24])
                        if bank == 128:
                            out.append((prog, name))
                    return sorted(set(out))
    return []


def _vlq(n):
    b = [n & 0x7F]
    n >>= 7
    while n:
        b.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(b))


def write_midi(path, program, events):
    """Type-0 SMF on channel 10: program change, then per slot a note on, note off after
    0.8 s and all-sound-off at the slot's end. 960 ticks per second (480 per quarter at
    the default 120 bpm). events: [(note, velocity)]."""
    tps = 960
    ev = [(0, bytes([0xC9, program]))]
    for k, (note, vel) in enumerate(events):
        t0 = int(round(k * SLOT_S * tps))
        ev.append((t0, bytes([0x99, note, vel])))
        ev.append((t0 + int(0.8 * tps), bytes([0x89, note, 0])))
        ev.append((t0 + int((SLOT_S - 0.05) * tps), bytes([0xB9, 120, 0])))
    ev.sort(key=lambda e: e[0])
    trk, last = b"", 0
    for t, m in ev:
        trk += _vlq(t - last) + m
        last = t
    trk += _vlq(int(tps * SLOT_S)) + b"\xff\x2f\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480))
        f.write(b"MTrk" + struct.pack(">I", len(trk)) + trk)


def render_soundfont(name, path, velocities, cache_dir):
    """Yields (audio [frames], sr, kit, note, velocity) for every drum kit and GM key."""
    events = [(n, v) for n in sorted(GM_NOTES) for v in velocities]
    for prog, kit in sf_drum_presets(path):
        if SKIP_PRESETS.search(kit):
            continue
        wav = os.path.join(cache_dir, "%s_%03d_v%s.wav" % (name, prog, "-".join(map(str, velocities))))
        if not os.path.isfile(wav):
            with tempfile.TemporaryDirectory() as td:
                mid = os.path.join(td, "kit.mid")
                write_midi(mid, prog, events)
                subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5",
                                "-r", str(RENDER_SR), "-O", "float", "-T", "wav",
                                "-o", "synth.reverb.active=0", "-o", "synth.chorus.active=0",
                                "-F", wav + ".tmp", path, mid],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                os.replace(wav + ".tmp", wav)
        x, sr = read_audio(wav)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 2:
            x = x.mean(axis=1)
        slot = int(round(SLOT_S * sr))
        for k, (note, vel) in enumerate(events):
            seg = x[k * slot:(k + 1) * slot - int(0.06 * sr)]
            yield seg, sr, "%s %d %s" % (name, prog, kit), note, vel


def highpass_biquad(x, sr, cutoff=50.0, q=1.0 / math.sqrt(2.0)):
    w0 = 2.0 * math.pi * cutoff / sr
    alpha = math.sin(w0) / (2.0 * q)
    cw = math.cos(w0)
    b = np.array([(1 + cw) / 2, -(1 + cw), (1 + cw) / 2])
    a = np.array([1 + alpha, -2 * cw, 1 - alpha])
    return signal.lfilter(b / a[0], a / a[0], x)


def prepare(x, sr_in, sr, tar_l, peak=0.9, trim_db_frac=0.01, preroll_s=0.002,
            min_peak=1e-3, min_dur=0.0):
    """One file's samples [frames, channels] -> float32 [tar_l], or None if rejected:
    peak below min_peak (digital silence, unused GM keys) or less than min_dur seconds
    above -30 dB of the peak (the authors' quiet/short-file rejection)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr_in != sr:
        f = Fraction(sr, sr_in).limit_denominator(1000)
        x = signal.resample_poly(x, f.numerator, f.denominator)
    amax = np.max(np.abs(x)) if x.size else 0.0
    if amax <= max(min_peak, 1e-6):
        return None
    if min_dur > 0:
        hot = np.flatnonzero(np.abs(x) > amax * 10 ** (-30 / 20.0))
        if (hot[-1] - hot[0]) / sr < min_dur:
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


def dedupe(audio, labels, thr):
    """Indices to keep: greedy, a sound is dropped if its zero-lag normalised correlation
    with a kept sound of the same class exceeds thr."""
    keep = np.ones(len(audio), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        a = audio[idx].astype(np.float64)
        a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12
        g = np.abs(a @ a.T)
        for j in range(len(idx)):
            if not keep[idx[j]]:
                continue
            dup = np.flatnonzero(g[j, j + 1:] > thr) + j + 1
            keep[idx[dup]] = False
    return np.flatnonzero(keep)


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
    ap.add_argument("--sources", default="hydrogen,FluidR3_GM,MuseScore_General_Lite",
                    help="comma-separated: hydrogen and/or soundfont names of SOUNDFONTS")
    ap.add_argument("--permissive", type=int, default=0,
                    help="1: keep only MIT / CC0 / CC-BY items (the bundled model's data, "
                    "with --merge Rim:Snare); 0 (default): also the GPL kits")
    ap.add_argument("--velocities", default="40,80,120", help="soundfont note velocities")
    ap.add_argument("--dup_corr", type=float, default=0.995)
    ap.add_argument("--min_peak", type=float, default=1e-3, help="reject quieter (raw peak)")
    ap.add_argument("--min_dur", type=float, default=0.02,
                    help="reject sounds less than this many s above -30 dB of their peak")
    ap.add_argument("--merge", default="",
                    help="class merges, e.g. Rim:Snare (the class list keeps only targets)")
    ap.add_argument("--cache", default=os.path.join(here, "data", "gm_render"))
    args = ap.parse_args()
    exclude = tuple(k for k in args.exclude_kits.split(",") if k)
    sources = [x for x in args.sources.split(",") if x]
    velocities = [int(v) for v in args.velocities.split(",")]
    merge = dict(m.split(":") for m in args.merge.split(",") if m)
    classes = [c for c in CLASSES if c not in merge]

    tar_l = (args.n_grains + 3) * args.l_grain // 4
    audio, labels, paths, srcs, lics = [], [], [], [], []
    n_rejected = {}

    def add(x, sr_in, cls, path, src, lic):
        y = prepare(x, sr_in, args.sr, tar_l, min_peak=args.min_peak, min_dur=args.min_dur)
        if y is None:
            n_rejected[src] = n_rejected.get(src, 0) + 1
            return
        audio.append(y)
        labels.append(classes.index(merge.get(cls, cls)))
        paths.append(path)
        srcs.append(src)
        lics.append(lic)

    if "hydrogen" in sources:
        if not os.path.isdir(args.root):
            sys.exit("no drum kits at %s: install the Debian package hydrogen-drumkits" % args.root)
        for path, cls, kit, name in scan_kits(args.root, exclude):
            lic = KIT_LICENCES.get(kit, "unknown")
            if args.permissive and lic not in PERMISSIVE:
                continue
            x, sr_in = read_audio(path)
            add(x, sr_in, cls, os.path.relpath(path, args.root), "hydrogen:" + kit, lic)
    os.makedirs(args.cache, exist_ok=True)
    for name, path, lic, pkg in SOUNDFONTS:
        if name not in sources:
            continue
        if not os.path.isfile(path):
            sys.exit("no soundfont %s: install the Debian package %s (and fluidsynth)" % (path, pkg))
        if args.permissive and lic not in PERMISSIVE:
            continue
        for x, sr_in, kit, note, vel in render_soundfont(name, path, velocities, args.cache):
            add(x, sr_in, GM_NOTES[note], "%s note %d vel %d" % (kit, note, vel), name, lic)

    audio = np.stack(audio)
    labels = np.array(labels, dtype=np.int64)
    n_before = len(labels)
    keep = dedupe(audio, labels, args.dup_corr)
    audio, labels = audio[keep], labels[keep]
    paths = [paths[i] for i in keep]
    srcs = [srcs[i] for i in keep]
    lics = [lics[i] for i in keep]
    print("rejected as quiet/short: %s; near-duplicates dropped: %d of %d"
          % (json.dumps(n_rejected), n_before - len(labels), n_before))

    rng = np.random.default_rng(args.seed)
    split = np.zeros(len(labels), dtype=np.int64)
    for c in range(len(classes)):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = max(1, int(round(args.test_frac * idx.size))) if idx.size >= 4 else 0
        split[idx[:n_test]] = 1

    counts = {}
    print("%-16s %6s %6s %6s" % ("class", "train", "test", "total"))
    for c, name in enumerate(classes):
        tr = int(np.sum((labels == c) & (split == 0)))
        te = int(np.sum((labels == c) & (split == 1)))
        counts[name] = {"train": tr, "test": te}
        print("%-16s %6d %6d %6d" % (name, tr, te, tr + te))
    print("%-16s %6d %6d %6d" % ("all", int(np.sum(split == 0)), int(np.sum(split == 1)), len(labels)))
    src_family = [s.split(":")[0] if s.startswith("hydrogen") else s for s in srcs]
    per_source = {}
    for fam, lic, l in zip(src_family, lics, labels.tolist()):
        key = "%s (%s)" % (fam if fam != "hydrogen" else "hydrogen-drumkits", lic)
        per_source.setdefault(key, {c: 0 for c in classes})[classes[l]] += 1
    per_kit = {}
    for s_, lic in zip(srcs, lics):
        per_kit.setdefault("%s (%s)" % (s_, lic), 0)
        per_kit["%s (%s)" % (s_, lic)] += 1
    print("\nper source and licence:")
    print("%-34s" % "source (licence)" + "".join("%8s" % c[:7] for c in classes) + "%8s" % "all")
    for k, v in sorted(per_source.items()):
        print("%-34s" % k + "".join("%8d" % v[c] for c in classes) + "%8d" % sum(v.values()))
    print("licences: %s" % json.dumps({l: lics.count(l) for l in sorted(set(lics))}))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, audio=audio, labels=labels, split=split,
                        paths=np.array(paths), classes=np.array(classes),
                        sources=np.array(srcs), licences=np.array(lics),
                        sr=args.sr, l_grain=args.l_grain, n_grains=args.n_grains, seed=args.seed)
    meta = {"classes": classes, "counts": counts, "sr": args.sr, "tar_l": tar_l,
            "l_grain": args.l_grain, "n_grains": args.n_grains, "seed": args.seed,
            "test_frac": args.test_frac, "n_files": len(labels),
            "excluded_kits": list(exclude), "permissive": bool(args.permissive),
            "sources": sources, "velocities": velocities, "merge": merge,
            "rejected": n_rejected, "duplicates_dropped": n_before - len(labels),
            "per_source_licence": per_source, "per_kit": per_kit,
            "licences": sorted(set(lics)),
            "files": [{"path": p, "class": classes[l], "split": "test" if s else "train",
                       "source": so, "licence": li}
                      for p, l, s, so, li in zip(paths, labels.tolist(), split.tolist(), srcs, lics)]}
    with open(os.path.splitext(args.out)[0] + "_counts.json", "w") as f:
        json.dump(meta, f, indent=1)
    print("wrote", args.out, audio.shape)


if __name__ == "__main__":
    main()
