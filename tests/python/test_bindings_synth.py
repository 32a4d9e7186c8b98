"""ngs.Synth, the Python face of the real-time synth: its output equals the offline
processes through the same bindings (the C API's own equivalence is test_synth.cpp),
events land at their frames, posts and errors behave as documented."""
import threading

import numpy as np
import pytest

from test_bindings import BACKEND, MF, Fix, _need_library_now, rel  # noqa: F401

import ngs


@pytest.fixture(scope="module")
def lstm(fixtures_dir):
    _need_library_now()
    f = Fix(fixtures_dir, "lstm22k")  # conditional: one-shots of classes
    yield f
    f.close()


def _render(s, total, block, events_at):
    """Blocks of `block` frames; events_at: {absolute frame: [event dicts]}."""
    out = np.full(total, np.nan, dtype=np.float32)
    for b0 in range(0, total, block):
        n = min(block, total - b0)
        evs = []
        for t in sorted(events_at):
            if b0 <= t < b0 + n:
                for e in events_at[t]:
                    evs.append(dict(e, frame=t - b0))
        out[b0:b0 + n] = s.process(n, evs)
    return out


def test_one_shot_equals_offline_sample_at_its_frame(lstm):
    info = lstm.model.info
    rng = np.random.default_rng()
    seed = int(rng.integers(0, 2 ** 64, dtype=np.uint64))
    cls = int(rng.integers(0, info.n_classes))
    t0 = int(rng.integers(0, 300))
    want = lstm.ctx.sample(cls, temperature=0.8, seed=seed)
    with ngs.Synth(lstm.model, block=128) as s:
        v = s.voice_new()
        total = t0 + s.latency + info.sample_length + 2 * info.hop_size
        got = _render(s, total, 100, {t0: [{"type": "start", "kind": "one_shot", "class": cls,
                                            "temperature": 0.8, "seed": seed, "voice": v}]})
        at = t0 + s.latency
        assert np.all(np.isfinite(got))
        assert np.all(got[:at] == 0)
        assert rel(got[at:at + info.sample_length], want) <= 1e-5
        assert np.all(got[at + info.sample_length:] == 0)
        st = s.stats()
        assert st["events_applied"] == 1 and st["events_dropped"] == 0


def test_free_voice_equals_decode_of_the_repeated_latent(lstm):
    info = lstm.model.info
    rng = np.random.default_rng()
    z = rng.standard_normal(info.z_dim).astype(np.float32)
    n = 9
    want = lstm.ctx.decode(np.tile(z, (n, 1)), seed=5, sequence=2)
    with ngs.Synth(lstm.model, block=64) as s:
        total = s.latency + len(want) + info.hop_size
        got = _render(s, total, 64, {0: [{"type": "start", "kind": "free", "z": z, "seed": 5,
                                          "sequence": 2, "voice": 7, "path_grains": n}]})
        assert rel(got[s.latency:s.latency + len(want)], want) <= 1e-5


def test_posted_events_apply_at_the_next_block_and_full_queue_is_false(lstm):
    with ngs.Synth(lstm.model, block=64, queue_size=4) as s:
        ev = {"type": "start", "kind": "one_shot", "class": 0, "seed": 1}
        posted = [s.post(dict(ev, voice=s.voice_new())) for _ in range(40)]
        assert posted[0] is True and posted[-1] is False  # the queue holds a few
        s.process(64)
        st = s.stats()
        assert st["queue_overflows"] == posted.count(False)
        assert st["events_applied"] + st["events_dropped"] <= posted.count(True)


def test_resynth_voice_takes_the_input_signal(lstm):
    info = lstm.model.info
    x = (0.3 * np.sin(np.arange(8 * info.hop_size) * 0.05)).astype(np.float32)
    with ngs.Synth(lstm.model, block=info.hop_size) as s:
        outs = []
        for b in range(0, len(x), info.hop_size):
            evs = [{"type": "start", "kind": "resynth", "voice": 3}] if b == 0 else []
            outs.append(s.process(x[b:b + info.hop_size], evs))
        y = np.concatenate(outs)
        assert np.all(np.isfinite(y)) and np.any(y != 0)


def test_bad_arguments_raise_and_bad_events_are_counted(lstm):
    s = ngs.Synth(lstm.model, block=32)
    with pytest.raises(ValueError):
        s.process(33)
    with pytest.raises(ValueError):
        s.process(8, [{"type": "explode"}])
    with pytest.raises(ValueError):
        s.process(8, [{"type": "start", "bogus": 1}])
    with pytest.raises(ValueError):
        s.process(8, [{"type": "start", "kind": "free", "z": [1.0, 2.0]}])  # wrong z_dim
    s.process(8, [{"type": "stop", "voice": 12345}])  # unknown voice: dropped by the synth
    assert s.stats()["events_dropped"] == 1
    with pytest.raises(ngs.NgsError) as e:
        ngs.Synth(lstm.model, sample_rate=1000)
    assert e.value.status == ngs.Status.INVALID_ARGUMENT and "sample_rate" in str(e.value)
    s.close()
    s.close()
    with pytest.raises(ValueError):
        s.process(8)


def test_process_from_two_threads_raises_instead_of_mixing(lstm):
    with ngs.Synth(lstm.model, block=4096, voices=64) as s:
        for _ in range(32):
            s.post({"type": "start", "kind": "one_shot", "class": 1, "voice": s.voice_new()})
        errors = []
        go = threading.Event()

        def worker():
            go.wait()
            for _ in range(50):
                try:
                    s.process(4096)
                except ngs.ContextBusyError:
                    errors.append(1)

        ts = [threading.Thread(target=worker) for _ in range(2)]
        for t in ts:
            t.start()
        go.set()
        for t in ts:
            t.join()
        # Either both ran strictly one after the other, or one was refused: never both at once.
        assert s.stats()["blocks"] + len(errors) == 100


def test_fast_precision_matches_the_offline_fast_one_shot(lstm):
    info = lstm.model.info
    rng = np.random.default_rng()
    seed = int(rng.integers(0, 2 ** 63))
    cls = int(rng.integers(0, info.n_classes))
    with pytest.raises(ValueError):
        ngs.Synth(lstm.model, block=64, precision="half")
    fast_ctx = lstm.model.context(precision="fast")
    try:
        if fast_ctx.precision != "fast":
            pytest.skip("no fast path on this CPU")
        want = fast_ctx.sample(cls, temperature=0.8, seed=seed)
        want32 = lstm.ctx.sample(cls, temperature=0.8, seed=seed)
    finally:
        fast_ctx.close()
    for spread in (False, True):
        with ngs.Synth(lstm.model, block=64, spread=spread, precision="fast") as s:
            total = s.latency + info.sample_length + 2 * info.hop_size
            got = _render(s, total, 64, {0: [{"type": "start", "kind": "one_shot", "class": cls,
                                              "temperature": 0.8, "seed": seed, "voice": s.voice_new()}]})
            one = got[s.latency:s.latency + info.sample_length]
            assert rel(one, want) <= 5e-3  # test_util.h kTolFastSample
            assert 1e-6 < rel(one, want32) <= 5e-3
