"""ngs weights converter, PyTorch reference oracle, random stream and golden fixtures.

Modules:
    rng          docs/RANDOM.md random stream (numpy Philox4x32-10)
    paths        docs/PATHS.md latent paths
    reference    PyTorch reference of the authors' waveform and latent VAEs (the oracle)
    lightning    authors'-format Lightning checkpoint writer / restricted reader
    safetensors  minimal safetensors reader/writer (numpy + json)
    convert      the converter (python3 -m weights_converter --help)
    make_fixtures  golden fixtures (python3 -m weights_converter.make_fixtures --out DIR)
"""
__version__ = "0.1.0"
