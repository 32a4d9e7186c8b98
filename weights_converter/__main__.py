"""python3 -m weights_converter: see --help."""
import argparse
import sys
import time

from . import __version__
from .convert import (ConversionError, check, check_output_path, convert, format_check,
                      load_sources)

EPILOG = """\
examples:
  # waveform VAE only
  python3 -m weights_converter --waveform-ckpt w.ckpt --waveform-hparams w/hparams.yaml -o m.safetensors
  # waveform + latent (sequence) VAE, fp16 weights, with a numerical check
  python3 -m weights_converter --waveform-ckpt w.ckpt --waveform-hparams w.yaml \\
      --latent-ckpt l.ckpt --latent-hparams l.yaml -o m.safetensors --dtype fp16 --check
  # fine-tuned hierarchical checkpoint (keys w_model.*, l_model.*) plus both sub-model yamls
  python3 -m weights_converter --hierarchical-ckpt h.ckpt --waveform-hparams w.yaml \\
      --latent-hparams l.yaml -o m.safetensors

Checkpoints are read with a restricted pickle reader (no pytorch_lightning needed, no
pickled code executed). All problems (missing keys, wrong shapes/dtypes, bad
hyper-parameters, non-standard fixed windows) are reported at once; exit status 1.
BatchNorm is folded into the preceding Linear/Conv, the post-processing conv becomes
one FIR, slice_kernel/windows are dropped. Output format: docs/MODEL_FORMAT.md.
--check runs the authors'-structure reference on the original weights (float64) and
the converted file's tensors (float32) and prints the max relative error per stage.
"""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m weights_converter",
                                 description="Convert Neural Granular Sound Synthesis "
                                 "Lightning checkpoints into one ngs model file (safetensors).",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--waveform-ckpt", metavar="CKPT", help="waveform (grain) VAE checkpoint")
    ap.add_argument("--waveform-hparams", metavar="YAML", help="its hparams.yaml")
    ap.add_argument("--latent-ckpt", metavar="CKPT", help="latent (sequence) VAE checkpoint")
    ap.add_argument("--latent-hparams", metavar="YAML", help="its hparams.yaml")
    ap.add_argument("--hierarchical-ckpt", metavar="CKPT",
                    help="fine-tuned hierarchical checkpoint (needs both --*-hparams)")
    ap.add_argument("-o", "--out", required=True, metavar="FILE", help="output model file")
    ap.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32",
                    help="weight storage precision (default fp32)")
    ap.add_argument("--check", action="store_true",
                    help="compare the converted model with the original, per stage")
    ap.add_argument("--version", action="version", version="ngs weights_converter " + __version__)
    a = ap.parse_args(argv)
    if a.hierarchical_ckpt is None and a.waveform_ckpt is None:
        ap.error("give --waveform-ckpt (and optionally --latent-ckpt) or --hierarchical-ckpt")
    if a.hierarchical_ckpt is not None and (a.waveform_ckpt or a.latent_ckpt):
        ap.error("--hierarchical-ckpt replaces --waveform-ckpt/--latent-ckpt")
    if a.latent_ckpt and not a.latent_hparams:
        ap.error("--latent-ckpt needs --latent-hparams")
    if a.waveform_ckpt and not a.waveform_hparams:
        ap.error("--waveform-ckpt needs --waveform-hparams")
    t0 = time.perf_counter()
    try:
        check_output_path(a.out, [p for p in (a.waveform_ckpt, a.waveform_hparams, a.latent_ckpt,
                                              a.latent_hparams, a.hierarchical_ckpt) if p])
        src = load_sources(a.waveform_ckpt, a.waveform_hparams, a.latent_ckpt,
                           a.latent_hparams, a.hierarchical_ckpt)
        tensors, meta, src = convert(a.out, dtype=a.dtype, src=src)
    except ConversionError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001  one clear line, never a traceback
        print("error: unexpected failure (%s: %s); nothing was written; please report it"
              % (type(e).__name__, e), file=sys.stderr)
        return 1
    t1 = time.perf_counter()
    nbytes = sum(v.nbytes for v in tensors.values())
    print("wrote %s: %d tensors, %.1f MB of %s weights, in %.2f s"
          % (a.out, len(tensors), nbytes / 1e6, a.dtype, t1 - t0))
    if a.check:
        import json
        from . import safetensors
        try:
            back, meta2 = safetensors.load(a.out)
            rows = check(src, back, json.loads(meta2["ngs.config"]))
        except Exception as e:  # noqa: BLE001
            print("error: --check failed (%s: %s)" % (type(e).__name__, e), file=sys.stderr)
            return 1
        print(format_check(rows))
        print("check took %.2f s" % (time.perf_counter() - t1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
