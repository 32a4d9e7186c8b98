"""ngs weights converter, PyTorch reference oracle, random stream and golden fixtures.

Modules:
    rng          docs/RANDOM.md random stream (numpy Philox4x32-10)
    reference    the PyTorch oracle package: reference.model (the authors' waveform and
                 latent VAEs), reference.processes (resynthesis, loops, interpolation),
                 reference.paths (docs/PATHS.md latent paths)
    lightning    authors'-format Lightning checkpoint writer / restricted reader
    safetensors  minimal safetensors reader/writer (numpy + json)
    convert      the converter (python3 -m weights_converter --help)
    make_fixtures  golden fixtures (python3 -m weights_converter.make_fixtures --out DIR)
"""
__version__ = "0.1.0"
