"""The PyTorch reference ("oracle") of ngs and the references of its processes.

    model      the authors' waveform and latent VAEs and their stages (docs/MODEL_SPEC.md)
    processes  resynthesize, render_loop, sample_interpolation (docs/PROCESSES.md)
    paths      latent path generators (docs/PATHS.md)

Everything `weights_converter.reference` exported when it was one module is re-exported
here, so `from weights_converter.reference import WaveformVAE, LatentVAE, mod_sigmoid`
and `from weights_converter import reference as R; R.decode(...)` keep working.
"""
from .model import *  # noqa: F401,F403
from . import model, paths, processes  # noqa: F401
