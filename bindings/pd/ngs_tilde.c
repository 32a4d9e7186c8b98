/*
 * ngs~: Pure Data external for the ngs real-time synth (ngs_synth, docs/SYNTH.md), using
 * only the public C API (engine/include/ngs/ngs.h). Messages, timing and threading:
 * docs/PD.md; every message is shown in ngs~-help.pd.
 *
 *   [ngs~ [-voices N] [-threads N] [-seed S] [-spread] [model.safetensors]]
 *   left inlet: signal (resynthesis input) and messages; outlets: signal, info.
 *
 * Threads: Pd vanilla calls the message methods, the dsp method and the perform routine
 * on one thread (with a callback audio API the scheduler still holds Pd's global lock
 * around both), so a method never runs while perform does. The model and the synth are
 * created in the constructor, in `open` and in the dsp method, never in perform; a new
 * synth replaces the old one between two blocks.
 *
 * Timing: a message is stamped with Pd's logical time when it arrives. Perform renders
 * the n frames of logical time [now - n, now) (Pd advances the clock before the DSP
 * tick), so each event goes to frame round(n - (now - t) * sr) of the block: sample
 * accurate like vline~, whatever the time inside the 64-frame tick. Events wait in a
 * preallocated array (latents in a preallocated pool) and are all handed to
 * ngs_synth_process with the next block.
 */
#include <m_pd.h>
#include <ngs/ngs.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NGS_PD_MAX_EVENTS 256        /* events between two blocks */
#define NGS_PD_MAX_THREADS 64
#define NGS_PD_MAX_VOICES 256
#define NGS_PD_VOICE_LIMIT (1 << 30) /* our voice ids stay below ngs_synth_voice_new's */

static t_class *ngs_tilde_class;

typedef struct ngs_pd_pending {
    ngs_synth_event ev; /* ev.z points into the object's latent pool */
    double time;        /* Pd logical time of the message */
} ngs_pd_pending;

typedef struct _ngs_tilde {
    t_object x_obj;
    t_float x_f; /* the main signal inlet's scalar */
    t_outlet *x_info;
    t_clock *x_info_clock; /* sends the info of a synth made in the dsp method, afterwards */
    t_canvas *x_canvas;

    ngs_model *x_model;
    ngs_model_info x_minfo;
    t_symbol *x_file; /* resolved path of the open model */

    /* settings (creation flags and messages) */
    int x_voices;
    int x_threads;
    int x_spread;
    uint64_t x_seed;     /* key of the voices started without a seed */
    uint32_t x_counter;  /* their sequence: starts since `seed` (or creation) */
    float x_glide;       /* grains of a `latent` move */

    /* the synth and what it was made for */
    ngs_synth *x_synth;
    t_float x_sr;        /* its host rate */
    int x_block;         /* its max_block */
    float *x_in, *x_out; /* x_block frames each (Pd may alias the in and out vectors) */
    t_float x_dsp_sr;    /* the last dsp call's rate and block (0: none yet) */
    int x_dsp_n;

    /* the synth that `open` or a setting replaced, fading out (its voices got STOP_ALL) */
    ngs_synth *x_old_synth;
    ngs_model *x_old_model;  /* its model if `open` replaced that too, else NULL */
    float *x_old_out;        /* x_old_block frames */
    int x_old_block;
    long x_old_left;         /* frames it still plays */
    t_clock *x_old_clock;    /* frees it, on Pd's thread, once it is silent */

    /* events waiting for the next block */
    ngs_pd_pending *x_pending;   /* NGS_PD_MAX_EVENTS */
    ngs_synth_event *x_events;   /* NGS_PD_MAX_EVENTS: the block's array for process */
    float *x_zpool;              /* NGS_PD_MAX_EVENTS x z_dim */
    int x_zdim_pool;             /* z_dim the pool was sized for */
    int x_npending;
    int x_overflow_said;         /* the queue-full error was printed since the last block */

    /* voices */
    int32_t x_next_voice;
    int32_t x_latent_voice;      /* the `latent` voice, 0 = none */
    float *x_latent_z;           /* its target (z_dim), to restart it on a new synth */
    int32_t x_resynth_voice;     /* the `resynth 1` voice, 0 = none */
} t_ngs_tilde;

/* ---- small helpers ---------------------------------------------------------------- */

static void ngs_tilde_info(t_ngs_tilde *x);

static int32_t ngs_tilde_voice_id(t_ngs_tilde *x)
{
    int32_t v = x->x_next_voice++;
    if (x->x_next_voice >= NGS_PD_VOICE_LIMIT) x->x_next_voice = 1;
    return v;
}

/* The seed and sequence of a voice: an explicit seed (>= 0) with sequence 0, or the
   object's seed and the next number of its counter. */
static void ngs_tilde_voice_seed(t_ngs_tilde *x, double seed, ngs_synth_event *ev)
{
    if (seed >= 0) {
        ev->seed = (uint64_t)seed;
        ev->sequence = 0;
    } else {
        ev->seed = x->x_seed;
        ev->sequence = x->x_counter++;
    }
}

/* A float atom holding an integer in [lo, hi]; names the argument on failure. */
static int ngs_tilde_int_arg(t_ngs_tilde *x, const char *msg, const char *what,
                             const t_atom *a, double lo, double hi, double *out)
{
    if (a->a_type != A_FLOAT) {
        pd_error(x, "ngs~: %s: %s must be a number", msg, what);
        return 0;
    }
    double v = a->a_w.w_float;
    if (!isfinite(v) || v != floor(v) || v < lo || v > hi) {
        pd_error(x, "ngs~: %s: %s must be an integer in [%.0f, %.0f], got %g", msg, what, lo,
                 hi, v);
        return 0;
    }
    *out = v;
    return 1;
}

/* A finite float atom in [lo, hi]. */
static int ngs_tilde_float_arg(t_ngs_tilde *x, const char *msg, const char *what,
                               const t_atom *a, double lo, double hi, double *out)
{
    if (a->a_type != A_FLOAT) {
        pd_error(x, "ngs~: %s: %s must be a number", msg, what);
        return 0;
    }
    double v = a->a_w.w_float;
    if (!isfinite(v) || v < lo || v > hi) {
        pd_error(x, "ngs~: %s: %s must be in [%g, %g], got %g", msg, what, lo, hi, v);
        return 0;
    }
    *out = v;
    return 1;
}

/* Largest integer seed that a Pd float carries exactly everywhere (single precision). */
#define NGS_PD_MAX_SEED 16777216.0

static int ngs_tilde_need_synth(t_ngs_tilde *x, const char *msg)
{
    if (!x->x_model) {
        pd_error(x, "ngs~: %s: no model is open (send 'open <file>')", msg);
        return 0;
    }
    if (!x->x_synth) {
        pd_error(x, "ngs~: %s: the synth could not be created (see the error above)", msg);
        return 0;
    }
    return 1;
}

/* Queues an event for the next block; copies z (z_dim floats) into the pool. */
static int ngs_tilde_queue(t_ngs_tilde *x, const ngs_synth_event *ev, const float *z)
{
    if (x->x_npending >= NGS_PD_MAX_EVENTS) {
        if (!x->x_overflow_said)
            pd_error(x, "ngs~: more than %d events before the next DSP block (is DSP on?): "
                        "event dropped", NGS_PD_MAX_EVENTS);
        x->x_overflow_said = 1;
        return 0;
    }
    ngs_pd_pending *p = &x->x_pending[x->x_npending];
    p->ev = *ev;
    p->time = clock_getlogicaltime();
    if (z) {
        float *slot = x->x_zpool + (size_t)x->x_npending * (size_t)x->x_minfo.z_dim;
        memcpy(slot, z, sizeof(float) * (size_t)x->x_minfo.z_dim);
        p->ev.z = slot;
    } else {
        p->ev.z = NULL;
    }
    x->x_npending++;
    return 1;
}

/* ---- synth life cycle (never called from perform) ---------------------------------- */

static void ngs_tilde_free_buffers(t_ngs_tilde *x)
{
    if (x->x_in) freebytes(x->x_in, sizeof(float) * (size_t)x->x_block);
    if (x->x_out) freebytes(x->x_out, sizeof(float) * (size_t)x->x_block);
    x->x_in = x->x_out = NULL;
}

/* Creates a synth for `model` at rate sr and block n; NULL (and a Pd error) on failure. */
static ngs_synth *ngs_tilde_new_synth(t_ngs_tilde *x, const ngs_model *model, t_float sr,
                                      int n)
{
    if (!(sr >= 8000 && sr <= 192000) || sr != floor(sr)) {
        pd_error(x, "ngs~: sample rate %g Hz is not supported (integer 8000..192000 Hz)", sr);
        return NULL;
    }
    ngs_synth_params p = ngs_synth_default_params();
    p.sample_rate = (int)sr;
    p.max_block = n;
    p.max_voices = x->x_voices;
    p.n_threads = x->x_threads;
    p.seed = x->x_seed;
    p.spread = x->x_spread;
    ngs_synth *s = NULL;
    if (ngs_synth_init(model, p, &s) != NGS_STATUS_OK) {
        pd_error(x, "ngs~: cannot create the synth: %s", ngs_last_error());
        return NULL;
    }
    return s;
}

/* Restarts the held voices (`latent`, `resynth 1`) on a fresh synth at the next block. */
static void ngs_tilde_restart_held(t_ngs_tilde *x)
{
    if (x->x_latent_voice) {
        ngs_synth_event ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
        ev.kind = NGS_SYNTH_VOICE_FREE;
        ev.voice = x->x_latent_voice = ngs_tilde_voice_id(x);
        ngs_tilde_voice_seed(x, -1, &ev);
        ngs_tilde_queue(x, &ev, x->x_latent_z);
    }
    if (x->x_resynth_voice) {
        ngs_synth_event ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
        ev.kind = NGS_SYNTH_VOICE_RESYNTH;
        ev.voice = x->x_resynth_voice = ngs_tilde_voice_id(x);
        ngs_tilde_voice_seed(x, -1, &ev);
        ngs_tilde_queue(x, &ev, NULL);
    }
}

/* Frees the fading synth (and its model) at once. Never called from perform. */
static void ngs_tilde_drop_old(t_ngs_tilde *x)
{
    clock_unset(x->x_old_clock);
    ngs_synth_free(x->x_old_synth);
    ngs_model_free(x->x_old_model);
    if (x->x_old_out) freebytes(x->x_old_out, sizeof(float) * (size_t)x->x_old_block);
    x->x_old_synth = NULL;
    x->x_old_model = NULL;
    x->x_old_out = NULL;
    x->x_old_block = 0;
    x->x_old_left = 0;
}

static void ngs_tilde_old_tick(t_ngs_tilde *x) { ngs_tilde_drop_old(x); }

/* Hands the current synth (and `model`, if it goes too) over to fade out: its voices get
   STOP_ALL with the default fade (5 ms) and perform keeps mixing it until that is over,
   so that replacing a synth does not click. Falls back to freeing at once. */
static void ngs_tilde_retire(t_ngs_tilde *x, ngs_model *model)
{
    ngs_tilde_drop_old(x);
    ngs_synth *s = x->x_synth;
    float *buf = s ? x->x_out : NULL; /* its output buffer becomes the fading one */
    ngs_synth_event ev = ngs_synth_default_event(NGS_SYNTH_EVENT_STOP_ALL);
    if (!s || !buf || ngs_synth_post(s, &ev) != NGS_STATUS_OK) {
        ngs_synth_free(s);
        ngs_model_free(model);
        ngs_tilde_free_buffers(x);
        return;
    }
    /* silent after its latency + the fade; margin: two hops and a block */
    double ratio = x->x_sr / (double)x->x_minfo.sample_rate;
    long left = ngs_synth_latency(s) + (long)ceil(0.005 * x->x_sr) +
                2 * (long)ceil(x->x_minfo.hop_size * ratio) + x->x_block;
    x->x_old_synth = s;
    x->x_old_model = model;
    x->x_old_out = buf;
    x->x_old_block = x->x_block;
    x->x_old_left = left;
    if (x->x_in) freebytes(x->x_in, sizeof(float) * (size_t)x->x_block);
    x->x_in = x->x_out = NULL;
    /* freed on Pd's thread a little after it fell silent (also if DSP stops meanwhile) */
    clock_delay(x->x_old_clock, 1000.0 * left / x->x_sr + 100);
}

/* Replaces the synth by one for (sr, n) on the current model. Keeps the old one if the
   new one cannot be made. Returns 1 on success. */
static int ngs_tilde_remake_synth(t_ngs_tilde *x, t_float sr, int n, int fade)
{
    ngs_synth *s = ngs_tilde_new_synth(x, x->x_model, sr, n);
    if (!s) return 0;
    float *in = (float *)getbytes(sizeof(float) * (size_t)n);
    float *out = (float *)getbytes(sizeof(float) * (size_t)n);
    if (!in || !out) {
        if (in) freebytes(in, sizeof(float) * (size_t)n);
        if (out) freebytes(out, sizeof(float) * (size_t)n);
        ngs_synth_free(s);
        pd_error(x, "ngs~: out of memory");
        return 0;
    }
    if (fade) {
        ngs_tilde_retire(x, NULL);
    } else {
        ngs_tilde_drop_old(x);
        ngs_synth_free(x->x_synth);
        ngs_tilde_free_buffers(x);
    }
    x->x_synth = s;
    x->x_sr = sr;
    x->x_block = n;
    x->x_in = in;
    x->x_out = out;
    ngs_tilde_restart_held(x);
    return 1;
}

/* The rate and block the synth should be made for: the last dsp call's, else Pd's. */
static void ngs_tilde_target(const t_ngs_tilde *x, t_float *sr, int *n)
{
    *sr = x->x_dsp_sr > 0 ? x->x_dsp_sr : sys_getsr();
    *n = x->x_dsp_n > 0 ? x->x_dsp_n : sys_getblksize();
    if (*n < 1) *n = 64;
}

/* Loads a model and a synth for it; on any failure keeps what was open. */
static void ngs_tilde_open(t_ngs_tilde *x, t_symbol *file)
{
    if (!file || !*file->s_name) {
        pd_error(x, "ngs~: open: needs a model file name");
        return;
    }
    if (!x->x_pending || !x->x_events) {
        pd_error(x, "ngs~: open: out of memory");
        return;
    }
    /* Resolve relative names like Pd's own file objects: the patch's folder, then
       Pd's search path. */
    char dir[MAXPDSTRING], path[2 * MAXPDSTRING + 2];
    char *name = NULL;
    int fd = canvas_open(x->x_canvas, file->s_name, "", dir, &name, MAXPDSTRING, 1);
    if (fd < 0) {
        pd_error(x, "ngs~: open: cannot find '%s' (relative names are looked up in the "
                    "patch's folder and Pd's search path)%s", file->s_name,
                 x->x_model ? "; the previous model stays open" : "");
        return;
    }
    sys_close(fd);
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        pd_error(x, "ngs~: open: path too long");
        return;
    }

    ngs_model_params mp = ngs_model_default_params();
    mp.backend = NGS_BACKEND_CPU; /* the synth computes on the CPU whatever the backend */
    ngs_model *model = NULL;
    if (ngs_model_init_from_file(path, mp, &model) != NGS_STATUS_OK) {
        pd_error(x, "ngs~: open: %s%s", ngs_last_error(),
                 x->x_model ? " (the previous model stays open)" : "");
        return;
    }
    ngs_model_info info;
    ngs_model_get_info(model, &info);

    t_float sr;
    int n;
    ngs_tilde_target(x, &sr, &n);
    ngs_synth *s = ngs_tilde_new_synth(x, model, sr, n);
    float *in = s ? (float *)getbytes(sizeof(float) * (size_t)n) : NULL;
    float *out = s ? (float *)getbytes(sizeof(float) * (size_t)n) : NULL;
    size_t zbytes = sizeof(float) * (size_t)NGS_PD_MAX_EVENTS * (size_t)info.z_dim;
    float *zpool = s ? (float *)getbytes(zbytes) : NULL;
    float *latent = s ? (float *)getbytes(sizeof(float) * (size_t)info.z_dim) : NULL;
    if (!s || !in || !out || !zpool || !latent) {
        if (s && (!in || !out || !zpool || !latent)) pd_error(x, "ngs~: out of memory");
        if (in) freebytes(in, sizeof(float) * (size_t)n);
        if (out) freebytes(out, sizeof(float) * (size_t)n);
        if (zpool) freebytes(zpool, zbytes);
        if (latent) freebytes(latent, sizeof(float) * (size_t)info.z_dim);
        ngs_synth_free(s);
        ngs_model_free(model);
        pd_error(x, "ngs~: open: '%s' not opened%s", path,
                 x->x_model ? " (the previous model stays open)" : "");
        return;
    }

    /* Swap between two blocks (see the threads note at the top). The synth first: the
       model must outlive it. */
    ngs_tilde_retire(x, x->x_model); /* the old voices fade out; the model goes after */
    if (x->x_zpool)
        freebytes(x->x_zpool,
                  sizeof(float) * (size_t)NGS_PD_MAX_EVENTS * (size_t)x->x_zdim_pool);
    if (x->x_latent_z) freebytes(x->x_latent_z, sizeof(float) * (size_t)x->x_zdim_pool);
    x->x_model = model;
    x->x_minfo = info;
    x->x_file = gensym(path);
    x->x_synth = s;
    x->x_sr = sr;
    x->x_block = n;
    x->x_in = in;
    x->x_out = out;
    x->x_zpool = zpool;
    x->x_latent_z = latent;
    x->x_zdim_pool = info.z_dim;
    /* Events of the old model (its classes, its z size) are void. */
    x->x_npending = 0;
    x->x_latent_voice = 0;
    if (x->x_resynth_voice) ngs_tilde_restart_held(x);
    ngs_tilde_info(x);
}

/* ---- DSP ---------------------------------------------------------------------------- */

/* Drops the first `done` pending events (handed to the synth); moves the others, with
   their latents, to the front. No allocation: called from perform. */
static void ngs_tilde_keep_pending(t_ngs_tilde *x, int done)
{
    int rest = x->x_npending - done;
    size_t zd = (size_t)x->x_minfo.z_dim;
    for (int i = 0; i < rest; i++) {
        ngs_pd_pending *dst = &x->x_pending[i];
        *dst = x->x_pending[done + i];
        if (dst->ev.z) {
            float *slot = x->x_zpool + (size_t)i * zd;
            memmove(slot, dst->ev.z, sizeof(float) * zd);
            dst->ev.z = slot;
        }
    }
    x->x_npending = rest;
    if (rest < NGS_PD_MAX_EVENTS) x->x_overflow_said = 0;
}

static t_int *ngs_tilde_perform(t_int *w)
{
    t_ngs_tilde *x = (t_ngs_tilde *)(w[1]);
    t_sample *in = (t_sample *)(w[2]);
    t_sample *out = (t_sample *)(w[3]);
    int n = (int)(w[4]);

    if (!x->x_synth || n > x->x_block) {
        for (int i = 0; i < n; i++) out[i] = 0;
        return w + 5;
    }
    /* This block is logical time [now - n, now) at the block's rate. */
    double samples_per_ms = x->x_sr / 1000.0;
    int k = 0;
    uint32_t last = 0;
    for (; k < x->x_npending; k++) {
        const ngs_pd_pending *p = &x->x_pending[k];
        double pos = n - clock_gettimesince(p->time) * samples_per_ms;
        double f = floor(pos + 0.5);
        /* A time that rounds to the end of the block is the next block's frame 0 (Pd's
           logical time carries rounding errors: a message due at a block boundary may
           arrive a hair early). It and the later ones wait for the next block. */
        if (f >= n) break;
        if (!(f >= 0)) f = 0; /* older than the block (DSP was off): at its start */
        uint32_t frame = (uint32_t)f;
        if (frame < last) frame = last; /* keep frame order */
        last = frame;
        x->x_events[k] = p->ev;
        x->x_events[k].frame = frame;
    }

    for (int i = 0; i < n; i++) x->x_in[i] = (float)in[i];
    ngs_status st = ngs_synth_process(x->x_synth, x->x_events, k, x->x_in, x->x_out, n);
    ngs_tilde_keep_pending(x, k);
    if (st != NGS_STATUS_OK) {
        for (int i = 0; i < n; i++) out[i] = 0;
        return w + 5;
    }
    if (x->x_old_synth && x->x_old_left > 0 && n <= x->x_old_block) {
        if (ngs_synth_process(x->x_old_synth, NULL, 0, x->x_in, x->x_old_out, n) ==
            NGS_STATUS_OK)
            for (int i = 0; i < n; i++) x->x_out[i] += x->x_old_out[i];
        x->x_old_left -= n;
    }
    for (int i = 0; i < n; i++) out[i] = (t_sample)x->x_out[i];
    return w + 5;
}

static void ngs_tilde_dsp(t_ngs_tilde *x, t_signal **sp)
{
    t_float sr = sp[0]->s_sr;
    int n = sp[0]->s_n;
    x->x_dsp_sr = sr;
    x->x_dsp_n = n;
    /* A DSP restart (any edit of the patch causes one) keeps the synth and its voices
       unless the rate changed or the block grew beyond the synth's max_block. */
    if (x->x_model && (!x->x_synth || sr != x->x_sr || n > x->x_block)) {
        /* The info goes out from a clock, after Pd has built the DSP graph: a message sent
           from here could reach objects that edit the patch or switch DSP mid-build. */
        if (ngs_tilde_remake_synth(x, sr, n, 0)) /* the old one cannot run at this rate */
            clock_delay(x->x_info_clock, 0);
        else if (x->x_synth && (sr != x->x_sr || n > x->x_block)) {
            /* the old synth cannot serve this rate / block: silence until fixed */
            ngs_tilde_drop_old(x);
            ngs_synth_free(x->x_synth);
            ngs_tilde_free_buffers(x);
            x->x_synth = NULL;
            x->x_block = 0;
        }
    }
    dsp_add(ngs_tilde_perform, 4, x, sp[0]->s_vec, sp[1]->s_vec, (t_int)n);
}

/* ---- messages ------------------------------------------------------------------------ */

static void ngs_tilde_open_msg(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    if (argc != 1 || argv[0].a_type != A_SYMBOL) {
        pd_error(x, "ngs~: open: usage: open <model file>");
        return;
    }
    ngs_tilde_open(x, argv[0].a_w.w_symbol);
}

/* trigger <class name or index> [gain] [seed] [temperature] */
static void ngs_tilde_trigger(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    if (!ngs_tilde_need_synth(x, "trigger")) return;
    if (!x->x_minfo.has_latent_model) {
        pd_error(x, "ngs~: trigger: the model has no sequence VAE (use latent or path)");
        return;
    }
    if (argc > 4) {
        pd_error(x, "ngs~: trigger: usage: trigger <class> [gain] [seed] [temperature]");
        return;
    }
    int cls = NGS_CLASS_NONE;
    if (x->x_minfo.n_classes > 0) {
        if (argc < 1) {
            pd_error(x, "ngs~: trigger: needs a class (name or index 0..%d)",
                     x->x_minfo.n_classes - 1);
            return;
        }
        if (argv[0].a_type == A_SYMBOL) {
            cls = ngs_model_find_class(x->x_model, argv[0].a_w.w_symbol->s_name);
            if (cls < 0) {
                pd_error(x, "ngs~: trigger: unknown class '%s' (send 'info' for the list)",
                         argv[0].a_w.w_symbol->s_name);
                return;
            }
        } else {
            double v;
            if (!ngs_tilde_int_arg(x, "trigger", "the class index", &argv[0], 0,
                                   x->x_minfo.n_classes - 1, &v))
                return;
            cls = (int)v;
        }
    } else if (argc >= 1) {
        double v; /* unconditional model: the class may be given as -1 */
        if (!ngs_tilde_int_arg(x, "trigger", "the class of an unconditional model",
                               &argv[0], -1, -1, &v))
            return;
    }
    double gain = 1, seed = -1, temperature = 1;
    if (argc >= 2 && !ngs_tilde_float_arg(x, "trigger", "gain", &argv[1], 0, 1e6, &gain))
        return;
    if (argc >= 3 &&
        !ngs_tilde_int_arg(x, "trigger", "seed (-1 = automatic)", &argv[2], -1,
                           NGS_PD_MAX_SEED, &seed))
        return;
    if (argc >= 4 &&
        !ngs_tilde_float_arg(x, "trigger", "temperature", &argv[3], 0, 1e3, &temperature))
        return;

    ngs_synth_event ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
    ev.kind = NGS_SYNTH_VOICE_ONE_SHOT;
    ev.voice = ngs_tilde_voice_id(x);
    ev.class_index = cls;
    ev.gain = (float)gain;
    ev.temperature = (float)temperature;
    ngs_tilde_voice_seed(x, seed, &ev);
    ngs_tilde_queue(x, &ev, NULL);
}

/* latent <z_1 ... z_n>: starts the latent voice, or moves its target (over `glide`). */
static void ngs_tilde_latent(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    if (!ngs_tilde_need_synth(x, "latent")) return;
    int zd = x->x_minfo.z_dim;
    if (argc != zd) {
        pd_error(x, "ngs~: latent: needs %d numbers (the model's z_dim), got %d", zd, argc);
        return;
    }
    float z[1024];
    float *zp = zd <= 1024 ? z : NULL;
    if (!zp) {
        pd_error(x, "ngs~: latent: z_dim %d is larger than this object handles (1024)", zd);
        return;
    }
    for (int i = 0; i < zd; i++) {
        if (argv[i].a_type != A_FLOAT || !isfinite(argv[i].a_w.w_float)) {
            pd_error(x, "ngs~: latent: element %d is not a finite number", i + 1);
            return;
        }
        zp[i] = (float)argv[i].a_w.w_float;
    }
    ngs_synth_event ev;
    int32_t voice;
    if (x->x_latent_voice) {
        ev = ngs_synth_default_event(NGS_SYNTH_EVENT_SET_LATENT);
        ev.voice = voice = x->x_latent_voice;
        ev.glide = x->x_glide;
    } else {
        ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
        ev.kind = NGS_SYNTH_VOICE_FREE;
        ev.voice = voice = ngs_tilde_voice_id(x);
        ngs_tilde_voice_seed(x, -1, &ev);
    }
    if (ngs_tilde_queue(x, &ev, zp)) {
        x->x_latent_voice = voice;
        memcpy(x->x_latent_z, zp, sizeof(float) * (size_t)zd);
    }
}

static void ngs_tilde_glide(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    double g;
    if (argc != 1) {
        pd_error(x, "ngs~: glide: usage: glide <grains>");
        return;
    }
    if (!ngs_tilde_float_arg(x, "glide", "grains", &argv[0], 0, 1e6, &g)) return;
    x->x_glide = (float)g;
}

/* path <kind> <seconds> [seed] */
static void ngs_tilde_path(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    if (!ngs_tilde_need_synth(x, "path")) return;
    if (argc < 2 || argc > 3) {
        pd_error(x, "ngs~: path: usage: path <line|circle|spiral|random|back_and_forth> "
                    "<seconds> [seed]");
        return;
    }
    int kind;
    if (argv[0].a_type == A_SYMBOL) {
        kind = ngs_path_kind_from_name(argv[0].a_w.w_symbol->s_name);
        if (kind < 0) {
            pd_error(x, "ngs~: path: unknown kind '%s' (line, circle, spiral, random, "
                        "back_and_forth)", argv[0].a_w.w_symbol->s_name);
            return;
        }
    } else {
        double v;
        if (!ngs_tilde_int_arg(x, "path", "the kind", &argv[0], 0, 4, &v)) return;
        kind = (int)v;
    }
    double seconds, seed = -1;
    if (!ngs_tilde_float_arg(x, "path", "seconds", &argv[1], 0, 3600, &seconds)) return;
    if (argc >= 3 &&
        !ngs_tilde_int_arg(x, "path", "seed (-1 = automatic)", &argv[2], -1, NGS_PD_MAX_SEED,
                           &seed))
        return;
    int grains = ngs_model_grains_for_duration(x->x_model, seconds);
    if (grains < 1) {
        pd_error(x, "ngs~: path: %g s is shorter than one grain (%d samples at %d Hz)",
                 seconds, x->x_minfo.grain_length, x->x_minfo.sample_rate);
        return;
    }
    ngs_synth_event ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
    ev.kind = NGS_SYNTH_VOICE_FREE;
    ev.voice = ngs_tilde_voice_id(x);
    ngs_tilde_voice_seed(x, seed, &ev);
    ev.use_path = 1;
    ev.path = ngs_path_default_params();
    ev.path.kind = (ngs_path_kind)kind;
    ev.path.seed = ev.seed; /* as `ngs path --seed`: the path and the grain noise share it */
    ev.path.sequence = ev.sequence;
    ev.path_grains = grains;
    ngs_tilde_queue(x, &ev, NULL);
}

static void ngs_tilde_resynth(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    double on;
    if (argc != 1) {
        pd_error(x, "ngs~: resynth: usage: resynth <0|1>");
        return;
    }
    if (!ngs_tilde_int_arg(x, "resynth", "the switch", &argv[0], 0, 1, &on)) return;
    if (!ngs_tilde_need_synth(x, "resynth")) return;
    if (on && !x->x_resynth_voice) {
        ngs_synth_event ev = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
        ev.kind = NGS_SYNTH_VOICE_RESYNTH;
        ev.voice = ngs_tilde_voice_id(x);
        ngs_tilde_voice_seed(x, -1, &ev);
        if (ngs_tilde_queue(x, &ev, NULL)) x->x_resynth_voice = ev.voice;
    } else if (!on && x->x_resynth_voice) {
        ngs_synth_event ev = ngs_synth_default_event(NGS_SYNTH_EVENT_STOP);
        ev.voice = x->x_resynth_voice;
        if (ngs_tilde_queue(x, &ev, NULL)) x->x_resynth_voice = 0;
    }
}

/* stop [fade ms]: every voice fades out (default fade 5 ms). */
static void ngs_tilde_stop(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    double ms = -1;
    if (argc > 1) {
        pd_error(x, "ngs~: stop: usage: stop [fade ms]");
        return;
    }
    if (argc == 1 && !ngs_tilde_float_arg(x, "stop", "fade (ms)", &argv[0], 0, 60000, &ms))
        return;
    if (!ngs_tilde_need_synth(x, "stop")) return;
    ngs_synth_event ev = ngs_synth_default_event(NGS_SYNTH_EVENT_STOP_ALL);
    if (ms >= 0) ev.fade = (int32_t)floor(ms * x->x_sr / 1000.0 + 0.5);
    if (ngs_tilde_queue(x, &ev, NULL)) {
        x->x_latent_voice = 0;
        x->x_resynth_voice = 0;
    }
}

/* seed <n>: voices started without a seed use key n and sequence 0, 1, 2, ... again. */
static void ngs_tilde_seed(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    double v;
    if (argc != 1) {
        pd_error(x, "ngs~: seed: usage: seed <integer >= 0>");
        return;
    }
    if (!ngs_tilde_int_arg(x, "seed", "the seed", &argv[0], 0, NGS_PD_MAX_SEED, &v)) return;
    x->x_seed = (uint64_t)v;
    x->x_counter = 0;
}

/* Settings that need a new synth: applied at once (between two blocks). */
static void ngs_tilde_setting(t_ngs_tilde *x, int *field, int value)
{
    int old = *field;
    *field = value;
    if (!x->x_model) return;
    t_float sr;
    int n;
    ngs_tilde_target(x, &sr, &n);
    if (ngs_tilde_remake_synth(x, sr, n, 1))
        ngs_tilde_info(x);
    else
        *field = old;
}

static void ngs_tilde_threads(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    double v;
    if (argc != 1) {
        pd_error(x, "ngs~: threads: usage: threads <1..%d>", NGS_PD_MAX_THREADS);
        return;
    }
    if (!ngs_tilde_int_arg(x, "threads", "the thread count", &argv[0], 1, NGS_PD_MAX_THREADS,
                           &v))
        return;
    ngs_tilde_setting(x, &x->x_threads, (int)v);
}

static void ngs_tilde_voices(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    double v;
    if (argc != 1) {
        pd_error(x, "ngs~: voices: usage: voices <1..%d>", NGS_PD_MAX_VOICES);
        return;
    }
    if (!ngs_tilde_int_arg(x, "voices", "the voice count", &argv[0], 1, NGS_PD_MAX_VOICES, &v))
        return;
    ngs_tilde_setting(x, &x->x_voices, (int)v);
}

static void ngs_tilde_spread(t_ngs_tilde *x, t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    double v;
    if (argc != 1) {
        pd_error(x, "ngs~: spread: usage: spread <0|1>");
        return;
    }
    if (!ngs_tilde_int_arg(x, "spread", "the switch", &argv[0], 0, 1, &v)) return;
    ngs_tilde_setting(x, &x->x_spread, (int)v);
}

/* info outlet: model, classes, rates, block, latency, settings. */
static void ngs_tilde_out(t_ngs_tilde *x, const char *sel, int argc, t_atom *argv)
{
    outlet_anything(x->x_info, gensym(sel), argc, argv);
}

static void ngs_tilde_out_float(t_ngs_tilde *x, const char *sel, double v)
{
    t_atom a;
    SETFLOAT(&a, (t_float)v);
    ngs_tilde_out(x, sel, 1, &a);
}

static void ngs_tilde_info(t_ngs_tilde *x)
{
    if (!x->x_model) {
        ngs_tilde_out(x, "model", 0, NULL);
        return;
    }
    t_atom a[2];
    SETSYMBOL(&a[0], x->x_file);
    ngs_tilde_out(x, "model", 1, a);
    int nc = x->x_minfo.n_classes;
    t_atom *cls = (t_atom *)getbytes(sizeof(t_atom) * (size_t)(nc > 0 ? nc : 1));
    if (cls) {
        for (int i = 0; i < nc; i++) SETSYMBOL(&cls[i], gensym(ngs_model_class_name(x->x_model, i)));
        ngs_tilde_out(x, "classes", nc, cls);
        freebytes(cls, sizeof(t_atom) * (size_t)(nc > 0 ? nc : 1));
    }
    ngs_tilde_out_float(x, "oneshots", x->x_minfo.has_latent_model);
    ngs_tilde_out_float(x, "z_dim", x->x_minfo.z_dim);
    ngs_tilde_out_float(x, "model_samplerate", x->x_minfo.sample_rate);
    if (x->x_synth) {
        ngs_tilde_out_float(x, "samplerate", x->x_sr);
        ngs_tilde_out_float(x, "blocksize", x->x_block);
        int lat = ngs_synth_latency(x->x_synth);
        SETFLOAT(&a[0], (t_float)lat);
        SETFLOAT(&a[1], (t_float)(lat * 1000.0 / x->x_sr));
        ngs_tilde_out(x, "latency", 2, a);
        int ilat = ngs_synth_input_latency(x->x_synth);
        SETFLOAT(&a[0], (t_float)ilat);
        SETFLOAT(&a[1], (t_float)(ilat * 1000.0 / x->x_sr));
        ngs_tilde_out(x, "input_latency", 2, a);
    }
    ngs_tilde_out_float(x, "voices", x->x_voices);
    ngs_tilde_out_float(x, "threads", x->x_threads);
    ngs_tilde_out_float(x, "spread", x->x_spread);
    ngs_tilde_out_float(x, "seed", (double)x->x_seed);
}

static void ngs_tilde_info_msg(t_ngs_tilde *x) { ngs_tilde_info(x); }

static void ngs_tilde_info_tick(t_ngs_tilde *x) { ngs_tilde_info(x); }

static void ngs_tilde_stats(t_ngs_tilde *x)
{
    ngs_synth_stats st;
    if (!x->x_synth || ngs_synth_get_stats(x->x_synth, &st) != NGS_STATUS_OK) {
        pd_error(x, "ngs~: stats: no synth");
        return;
    }
    t_atom a[9];
    SETFLOAT(&a[0], (t_float)st.blocks);
    SETFLOAT(&a[1], (t_float)st.events_applied);
    SETFLOAT(&a[2], (t_float)st.events_dropped);
    SETFLOAT(&a[3], (t_float)st.voices_stolen);
    SETFLOAT(&a[4], (t_float)st.grains);
    SETFLOAT(&a[5], (t_float)st.active_voices);
    SETFLOAT(&a[6], (t_float)st.process_max_us);
    SETFLOAT(&a[7], (t_float)st.process_mean_us);
    ngs_tilde_out(x, "stats", 8, a);
}

/* ---- object life cycle ------------------------------------------------------------- */

/* [ngs~ [-voices N] [-threads N] [-seed S] [-spread] [model file]] */
static void *ngs_tilde_new(t_symbol *s, int argc, t_atom *argv)
{
    (void)s;
    t_ngs_tilde *x = (t_ngs_tilde *)pd_new(ngs_tilde_class);
    outlet_new(&x->x_obj, &s_signal);
    x->x_info = outlet_new(&x->x_obj, 0);
    x->x_info_clock = clock_new(x, (t_method)ngs_tilde_info_tick);
    x->x_old_clock = clock_new(x, (t_method)ngs_tilde_old_tick);
    x->x_canvas = canvas_getcurrent();
    x->x_voices = 16;
    x->x_threads = 1;
    x->x_glide = 1;
    x->x_next_voice = 1;
    x->x_pending = (ngs_pd_pending *)getbytes(sizeof(ngs_pd_pending) * NGS_PD_MAX_EVENTS);
    x->x_events = (ngs_synth_event *)getbytes(sizeof(ngs_synth_event) * NGS_PD_MAX_EVENTS);
    if (!x->x_pending || !x->x_events) {
        pd_error(x, "ngs~: out of memory");
        return x; /* no model: silent, every message says why */
    }

    t_symbol *file = NULL;
    while (argc > 0) {
        if (argv[0].a_type == A_SYMBOL && argv[0].a_w.w_symbol->s_name[0] == '-' && !file) {
            const char *flag = argv[0].a_w.w_symbol->s_name;
            double v;
            if (!strcmp(flag, "-spread")) {
                x->x_spread = 1;
                argc--, argv++;
                continue;
            }
            if (argc < 2) {
                pd_error(x, "ngs~: %s needs a value", flag);
                break;
            }
            if (!strcmp(flag, "-voices")) {
                if (ngs_tilde_int_arg(x, "-voices", "the voice count", &argv[1], 1,
                                      NGS_PD_MAX_VOICES, &v))
                    x->x_voices = (int)v;
            } else if (!strcmp(flag, "-threads")) {
                if (ngs_tilde_int_arg(x, "-threads", "the thread count", &argv[1], 1,
                                      NGS_PD_MAX_THREADS, &v))
                    x->x_threads = (int)v;
            } else if (!strcmp(flag, "-seed")) {
                if (ngs_tilde_int_arg(x, "-seed", "the seed", &argv[1], 0, NGS_PD_MAX_SEED, &v))
                    x->x_seed = (uint64_t)v;
            } else {
                pd_error(x, "ngs~: unknown flag '%s' (-voices, -threads, -seed, -spread)", flag);
            }
            argc -= 2, argv += 2;
        } else if (argv[0].a_type == A_SYMBOL && !file) {
            file = argv[0].a_w.w_symbol;
            argc--, argv++;
        } else {
            pd_error(x, "ngs~: unexpected creation argument (usage: ngs~ [-voices N] "
                        "[-threads N] [-seed S] [-spread] [model file])");
            break;
        }
    }
    /* A missing or bad model leaves a working, silent object: `open` can fix it. */
    if (file) ngs_tilde_open(x, file);
    return x;
}

static void ngs_tilde_free(t_ngs_tilde *x)
{
    clock_free(x->x_info_clock);
    ngs_tilde_drop_old(x);
    clock_free(x->x_old_clock);
    ngs_tilde_retire(x, x->x_model); /* the old voices fade out; the model goes after */
    if (x->x_zpool)
        freebytes(x->x_zpool,
                  sizeof(float) * (size_t)NGS_PD_MAX_EVENTS * (size_t)x->x_zdim_pool);
    if (x->x_latent_z) freebytes(x->x_latent_z, sizeof(float) * (size_t)x->x_zdim_pool);
    if (x->x_pending) freebytes(x->x_pending, sizeof(ngs_pd_pending) * NGS_PD_MAX_EVENTS);
    if (x->x_events) freebytes(x->x_events, sizeof(ngs_synth_event) * NGS_PD_MAX_EVENTS);
}

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
void ngs_tilde_setup(void)
{
    ngs_tilde_class = class_new(gensym("ngs~"), (t_newmethod)ngs_tilde_new,
                                (t_method)ngs_tilde_free, sizeof(t_ngs_tilde), CLASS_DEFAULT,
                                A_GIMME, 0);
    CLASS_MAINSIGNALIN(ngs_tilde_class, t_ngs_tilde, x_f);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_dsp, gensym("dsp"), A_CANT, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_open_msg, gensym("open"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_trigger, gensym("trigger"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_latent, gensym("latent"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_glide, gensym("glide"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_path, gensym("path"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_resynth, gensym("resynth"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_stop, gensym("stop"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_seed, gensym("seed"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_threads, gensym("threads"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_voices, gensym("voices"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_spread, gensym("spread"), A_GIMME, 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_info_msg, gensym("info"), 0);
    class_addmethod(ngs_tilde_class, (t_method)ngs_tilde_stats, gensym("stats"), 0);
    class_addbang(ngs_tilde_class, (t_method)ngs_tilde_info_msg);
    class_sethelpsymbol(ngs_tilde_class, gensym("ngs~"));
    post("ngs~ %s: neural granular sound synthesis (ngs_synth)", ngs_version());
}
