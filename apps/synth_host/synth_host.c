/* ngs-synth-host: a minimal real-time host of ngs_synth, in plain C (README "Real time").
 *
 * Two threads, as in a plug-in host or a JACK client:
 *   - the audio thread calls ngs_synth_process() once per block (fixed or varying size),
 *     paced like a sound card (one block period per block, absolute deadlines) or as fast
 *     as it can (--free-run); it publishes its frame counter through an atomic after
 *     each block, and records, from the control thread's two post counters, the
 *     block(s) whose start may have applied each posted event (see bound_posts);
 *   - the control thread (a UI, OSC or MIDI thread in a real host) posts the events of a
 *     score with ngs_synth_post() when the published frame counter reaches each event's
 *     time: a one-shot of every class, a free voice holding a latent and then released,
 *     a latent path.
 * Afterwards it writes the output as a 32-bit float WAV (libsndfile) and, with --log, a
 * text log of every voice and the frames its events may have been applied at, from which the
 * offline renders (ngs_sample, ngs_decode) can be placed and compared
 * (tests/cpp/test_synth_host.cpp).
 *
 * Nothing on the audio thread allocates, locks or does I/O: the output buffer is
 * allocated and touched before the threads start, and the file is written after they
 * end. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ngs/ngs.h>

#define HOST_NAME "ngs-synth-host"
#define MAX_VOICES 32
#define MAX_POSTS (2 * MAX_VOICES)

typedef enum { VOICE_ONE_SHOT, VOICE_FREE, VOICE_PATH } voice_type;

/* One voice of the score. Times are frames at the host rate. */
typedef struct {
    voice_type type;
    int32_t id;
    uint64_t start_at;   /* planned frame of the START post */
    uint64_t release_at; /* free voice: planned frame of the RELEASE post */
    int class_index;
    float gain;
    uint32_t sequence;
    ngs_path_kind path_kind;
    int path_grains;
    float *z; /* free voice: z_dim floats */
    int start_post, release_post; /* their indices in the post list */
} voice;

/* One post of the control thread, in time order. */
typedef struct {
    uint64_t at;
    int voice;   /* index in the score */
    int release; /* 0 START, 1 RELEASE */
    uint64_t tail; /* frames the voice may still play after this post applies */
    uint64_t cand[8]; /* the block starts that may have applied it (bound_posts) */
    int n_cand;
} post;

typedef struct {
    /* configuration */
    const char *model_path, *out_path, *log_path;
    int block, variable_blocks, free_run, rate, threads;
    uint64_t seed;
    double seconds;
    /* objects */
    ngs_model *model;
    ngs_model_info info;
    ngs_synth *synth;
    int host_rate;
    /* score */
    voice voices[MAX_VOICES];
    int n_voices;
    post posts[MAX_POSTS];
    int n_posts;
    /* output */
    float *out;
    uint64_t capacity, end_frame;
    uint64_t frames_rendered;
    /* shared between the threads */
    _Atomic uint64_t frames_done; /* published by the audio thread after each block */
    _Atomic int started;          /* posts begun by the control thread so far */
    _Atomic int posted;           /* posts accepted by the synth (ngs_synth_post returned) */
    _Atomic int poster_done;
    _Atomic int failed;
    /* audio thread's records (read after it ends) */
    int n_lo, n_hi; /* posts whose lo / hi block is known */
    uint64_t xruns, blocks;
    double worst_block_fraction;
    char audio_error[256], control_error[256]; /* one per thread: no shared writes */
} host;

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, HOST_NAME ": error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Deterministic normals for the free voice's latent (splitmix64 + Box-Muller). */
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float normal(uint64_t *s) {
    double u1 = ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Model-rate frames -> host-rate frames (rounded up). */
static uint64_t to_host(const host *h, uint64_t model_frames) {
    return (model_frames * (uint64_t)h->host_rate + (uint64_t)h->info.sample_rate - 1) /
           (uint64_t)h->info.sample_rate;
}

/* The score: one-shots of every class (or unconditional ones) spread over the first
   seconds, a free voice holding a random latent for a while, a circle path. */
static int build_score(host *h) {
    const double sr = (double)h->host_rate;
    const uint64_t hop = (uint64_t)h->info.hop_size;
    int n_shots = 0;
    if (h->info.has_latent_model) n_shots = h->info.n_classes > 0 ? h->info.n_classes : 3;
    if (n_shots > MAX_VOICES - 2) n_shots = MAX_VOICES - 2;
    const double span = h->seconds * 0.6;
    for (int i = 0; i < n_shots; ++i) {
        voice *v = &h->voices[h->n_voices++];
        memset(v, 0, sizeof *v);
        v->type = VOICE_ONE_SHOT;
        v->start_at = (uint64_t)((0.02 + span * i / (n_shots > 1 ? n_shots - 1 : 1)) * sr);
        v->class_index = h->info.n_classes > 0 ? i : NGS_CLASS_NONE;
        v->gain = 1.0f - 0.05f * (float)(i % 4);
        v->sequence = (uint32_t)i;
    }
    voice *f = &h->voices[h->n_voices++];
    memset(f, 0, sizeof *f);
    f->type = VOICE_FREE;
    f->start_at = (uint64_t)(0.15 * h->seconds * sr);
    f->release_at = f->start_at + (uint64_t)(0.35 * h->seconds * sr);
    f->gain = 0.8f;
    f->sequence = 100;
    f->z = malloc(sizeof(float) * (size_t)h->info.z_dim);
    if (!f->z) return -1;
    uint64_t s = h->seed ^ 0x5EEDull;
    for (int i = 0; i < h->info.z_dim; ++i) f->z[i] = normal(&s);

    voice *p = &h->voices[h->n_voices++];
    memset(p, 0, sizeof *p);
    p->type = VOICE_PATH;
    p->start_at = (uint64_t)(0.3 * h->seconds * sr);
    p->gain = 0.9f;
    p->sequence = 200;
    p->path_kind = NGS_PATH_KIND_CIRCLE;
    p->path_grains = (int)((0.4 * h->seconds * (double)h->info.sample_rate) / (double)hop);
    if (p->path_grains < 1) p->path_grains = 1;

    /* Posts in time order (insertion sort: a handful of entries). */
    const uint64_t lat = (uint64_t)ngs_synth_latency(h->synth);
    for (int i = 0; i < h->n_voices; ++i) {
        const voice *v = &h->voices[i];
        uint64_t tail = lat + to_host(h, 5 * hop);
        if (v->type == VOICE_ONE_SHOT) tail += to_host(h, h->info.sample_length);
        if (v->type == VOICE_FREE) tail += v->release_at - v->start_at;
        if (v->type == VOICE_PATH) tail += to_host(h, ((uint64_t)v->path_grains + 4) * hop);
        h->posts[h->n_posts++] = (post){v->start_at, i, 0, tail, {0}, 0};
        if (v->type == VOICE_FREE)
            h->posts[h->n_posts++] = (post){v->release_at, i, 1, lat + to_host(h, 5 * hop), {0}, 0};
    }
    for (int i = 1; i < h->n_posts; ++i)
        for (int j = i; j > 0 && h->posts[j].at < h->posts[j - 1].at; --j) {
            post t = h->posts[j];
            h->posts[j] = h->posts[j - 1];
            h->posts[j - 1] = t;
        }
    for (int k = 0; k < h->n_posts; ++k) {
        voice *v = &h->voices[h->posts[k].voice];
        if (h->posts[k].release) v->release_post = k;
        else v->start_post = k;
    }

    /* Length: every voice has ended (one-shot: sample_length; free voice: generously
       its held grains + 4 hops after the release; path: its grains + 3 hops), plus the
       latency and a margin. */
    uint64_t end = 0;
    for (int i = 0; i < h->n_voices; ++i) {
        const voice *v = &h->voices[i];
        uint64_t e = v->start_at;
        if (v->type == VOICE_ONE_SHOT) e += to_host(h, h->info.sample_length);
        if (v->type == VOICE_FREE) e = v->release_at + to_host(h, 5 * hop);
        if (v->type == VOICE_PATH) e += to_host(h, ((uint64_t)v->path_grains + 4) * hop);
        if (e > end) end = e;
    }
    h->end_frame = end + (uint64_t)ngs_synth_latency(h->synth) + (uint64_t)(0.05 * sr);
    return 0;
}

static ngs_synth_event start_event(const host *h, const voice *v) {
    ngs_synth_event e = ngs_synth_default_event(NGS_SYNTH_EVENT_START);
    e.voice = v->id;
    e.seed = h->seed;
    e.sequence = v->sequence;
    e.gain = v->gain;
    switch (v->type) {
    case VOICE_ONE_SHOT:
        e.kind = NGS_SYNTH_VOICE_ONE_SHOT;
        e.class_index = v->class_index;
        e.temperature = 1.0f;
        break;
    case VOICE_FREE:
        e.kind = NGS_SYNTH_VOICE_FREE;
        e.z = v->z;
        break;
    case VOICE_PATH:
        e.kind = NGS_SYNTH_VOICE_FREE;
        e.use_path = 1;
        e.path = ngs_path_default_params();
        e.path.kind = v->path_kind;
        e.path.seed = h->seed;
        e.path.sequence = v->sequence;
        e.path_grains = v->path_grains;
        break;
    }
    return e;
}

/* ---- control thread ------------------------------------------------------------------ */

static void sleep_ms(double ms) {
    struct timespec t = {0, (long)(ms * 1e6)};
    nanosleep(&t, NULL);
}

static void *control_thread(void *arg) {
    host *h = arg;
    for (int k = 0; k < h->n_posts && !atomic_load(&h->failed); ++k) {
        const post *p = &h->posts[k];
        voice *v = &h->voices[p->voice];
        /* Post when the audio thread is about to render the block holding p->at: the
           event applies at the start of the next block. */
        while (atomic_load_explicit(&h->frames_done, memory_order_acquire) + (uint64_t)h->block <
                   p->at &&
               !atomic_load(&h->failed)) {
            if (h->free_run) sched_yield();
            else sleep_ms(0.25);
        }
        ngs_synth_event e;
        if (p->release) {
            e = ngs_synth_default_event(NGS_SYNTH_EVENT_RELEASE);
            e.voice = v->id;
        } else {
            v->id = ngs_synth_voice_new(h->synth);
            e = start_event(h, v);
        }
        ngs_status st;
        atomic_fetch_add_explicit(&h->started, 1, memory_order_seq_cst);
        while ((st = ngs_synth_post(h->synth, &e)) == NGS_STATUS_CAPACITY) sleep_ms(0.25);
        if (st != NGS_STATUS_OK) {
            snprintf(h->control_error, sizeof h->control_error, "ngs_synth_post: %s", ngs_last_error());
            atomic_store(&h->failed, 1);
            break;
        }
        atomic_fetch_add_explicit(&h->posted, 1, memory_order_seq_cst);
    }
    atomic_store(&h->poster_done, 1);
    return NULL;
}

/* ---- audio thread -------------------------------------------------------------------- */

/* Which block start applies a posted event depends on when the post lands relative to
   process calls: a post that has returned before block j begins is applied at the start
   of block j at the latest; one that begins after block j has ended, after block j. So
   post i may be applied at block j for j from the first block whose end had seen it
   begun to the first block whose start had seen it returned: one block when the post
   fell between two process calls, two when it overlapped one. The audio thread keeps
   these candidates (a few per post, no allocation). */
static void add_candidate(post *p, uint64_t frame) {
    if (p->n_cand < (int)(sizeof p->cand / sizeof p->cand[0])) p->cand[p->n_cand] = frame;
    ++p->n_cand;
}

static void bound_posts_before(host *h, uint64_t frame) {
    const int returned = atomic_load_explicit(&h->posted, memory_order_seq_cst);
    for (int i = h->n_hi; i < h->n_lo; ++i) add_candidate(&h->posts[i], frame);
    for (int i = h->n_lo; i < returned; ++i) add_candidate(&h->posts[i], frame);
    for (int i = h->n_hi; i < returned; ++i) {
        const post *p = &h->posts[i];
        if (frame + p->tail > h->end_frame) h->end_frame = frame + p->tail; /* late: play it out */
    }
    if (returned > h->n_lo) h->n_lo = returned;
    h->n_hi = returned;
}

static void bound_posts_after(host *h, uint64_t frame) {
    const int begun = atomic_load_explicit(&h->started, memory_order_seq_cst);
    for (int i = h->n_lo; i < begun; ++i) add_candidate(&h->posts[i], frame);
    if (begun > h->n_lo) h->n_lo = begun;
}

static void *audio_thread(void *arg) {
    host *h = arg;
    /* Real-time priority when allowed (as JACK would give); harmless when refused. Not
       when free-running: that loop yields to the control thread, which a FIFO thread
       would starve. */
    if (!h->free_run) {
        struct sched_param sp = {.sched_priority = 10};
        pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    }

    const double period = (double)h->block / (double)h->host_rate;
    uint64_t frame = 0, rng = h->seed * 7919u + 1u;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    for (;;) {
        if (atomic_load_explicit(&h->poster_done, memory_order_acquire) && h->n_hi == h->n_posts &&
            frame >= h->end_frame)
            break;
        int n = h->block;
        if (h->variable_blocks) n = 1 + (int)(splitmix(&rng) % (uint64_t)h->block);
        if (frame + (uint64_t)n > h->capacity) {
            snprintf(h->audio_error, sizeof h->audio_error,
                     "the control thread fell behind by more than the output buffer");
            atomic_store(&h->failed, 1);
            break;
        }
        bound_posts_before(h, frame);
        const double t0 = now_s();
        if (ngs_synth_process(h->synth, NULL, 0, NULL, h->out + frame, n) != NGS_STATUS_OK) {
            snprintf(h->audio_error, sizeof h->audio_error, "ngs_synth_process: %s", ngs_last_error());
            atomic_store(&h->failed, 1);
            break;
        }
        const double used = (now_s() - t0) / ((double)n / (double)h->host_rate);
        if (used > h->worst_block_fraction) h->worst_block_fraction = used;
        bound_posts_after(h, frame);
        frame += (uint64_t)n;
        ++h->blocks;
        atomic_store_explicit(&h->frames_done, frame, memory_order_release);
        if (!h->free_run) {
            long ns = deadline.tv_nsec + (long)(period * (double)n / (double)h->block * 1e9);
            deadline.tv_sec += ns / 1000000000L;
            deadline.tv_nsec = ns % 1000000000L;
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > deadline.tv_sec ||
                (now.tv_sec == deadline.tv_sec && now.tv_nsec > deadline.tv_nsec)) {
                ++h->xruns; /* late: like a sound card, carry on from now */
                deadline = now;
            } else {
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
            }
        } else {
            /* As fast as possible, but never more than a block past a post the control
               thread has not begun (it would land arbitrarily late): yield until it has.
               Only in this mode does the audio thread wait for anything. */
            for (;;) {
                const int begun = atomic_load_explicit(&h->started, memory_order_acquire);
                if (begun >= h->n_posts || atomic_load(&h->failed) ||
                    h->posts[begun].at + (uint64_t)h->block > frame)
                    break;
                sched_yield();
            }
        }
    }
    h->frames_rendered = frame;
    return NULL;
}

/* ---- output -------------------------------------------------------------------------- */

/* The output files are opened (as OUT.partial) before rendering, so that a bad path fails
   at once, and renamed into place only when complete. */
typedef struct {
    char wav_tmp[4096], log_tmp[4096];
    SNDFILE *wav;
    FILE *log;
} outputs;

static int open_outputs(const host *h, outputs *o) {
    memset(o, 0, sizeof *o);
    if (snprintf(o->wav_tmp, sizeof o->wav_tmp, "%s.partial", h->out_path) >= (int)sizeof o->wav_tmp ||
        (h->log_path &&
         snprintf(o->log_tmp, sizeof o->log_tmp, "%s.partial", h->log_path) >= (int)sizeof o->log_tmp)) {
        fail("output path too long");
        return -1;
    }
    SF_INFO si;
    memset(&si, 0, sizeof si);
    si.samplerate = h->host_rate;
    si.channels = 1;
    si.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    o->wav = sf_open(o->wav_tmp, SFM_WRITE, &si);
    if (!o->wav) {
        fail("cannot write %s: %s", h->out_path, sf_strerror(NULL));
        return -1;
    }
    if (h->log_path) {
        o->log = fopen(o->log_tmp, "w");
        if (!o->log) {
            fail("cannot write %s: %s", h->log_path, strerror(errno));
            sf_close(o->wav);
            o->wav = NULL;
            unlink(o->wav_tmp);
            return -1;
        }
    }
    return 0;
}

/* Removes whatever is still partial. */
static void discard_outputs(outputs *o) {
    if (o->wav) {
        sf_close(o->wav);
        unlink(o->wav_tmp);
    }
    if (o->log) {
        fclose(o->log);
        unlink(o->log_tmp);
    }
    o->wav = NULL;
    o->log = NULL;
}

static int write_wav(const host *h, outputs *o) {
    sf_command(o->wav, SFC_SET_CLIPPING, NULL, SF_FALSE);
    const sf_count_t n = (sf_count_t)h->frames_rendered;
    const sf_count_t w = sf_writef_float(o->wav, h->out, n);
    const int closed = sf_close(o->wav);
    o->wav = NULL;
    if (w != n || closed != 0 || rename(o->wav_tmp, h->out_path) != 0) {
        fail("cannot write %s", h->out_path);
        unlink(o->wav_tmp);
        return -1;
    }
    return 0;
}

/* "F1,F2,...": the block starts that may have applied post k (bound_posts). */
static const char *candidates(const host *h, int k, char *buf, size_t size) {
    const post *p = &h->posts[k];
    size_t used = 0;
    buf[0] = 0;
    for (int c = 0; c < p->n_cand && c < 8 && used + 24 < size; ++c)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", used ? "," : "", (unsigned long long)p->cand[c]);
    return buf;
}

static int write_log(host *h, outputs *o) {
    FILE *f = o->log;
    o->log = NULL;
    char buf[512];
    fprintf(f, "ngs-synth-host 1\n");
    fprintf(f, "rate %d model_rate %d block %d variable %d latency %d frames %llu seed %llu\n",
            h->host_rate, h->info.sample_rate, h->block, h->variable_blocks,
            ngs_synth_latency(h->synth), (unsigned long long)h->frames_rendered,
            (unsigned long long)h->seed);
    for (int i = 0; i < h->n_voices; ++i) {
        const voice *v = &h->voices[i];
        switch (v->type) {
        case VOICE_ONE_SHOT:
            fprintf(f, "one_shot start %s class %d sequence %u gain %.9g\n",
                    candidates(h, v->start_post, buf, sizeof buf), v->class_index, v->sequence,
                    (double)v->gain);
            break;
        case VOICE_FREE:
            fprintf(f, "free start %s", candidates(h, v->start_post, buf, sizeof buf));
            fprintf(f, " release %s sequence %u gain %.9g z", candidates(h, v->release_post, buf, sizeof buf),
                    v->sequence, (double)v->gain);
            for (int j = 0; j < h->info.z_dim; ++j) fprintf(f, " %.9g", (double)v->z[j]);
            fprintf(f, "\n");
            break;
        case VOICE_PATH:
            fprintf(f, "path start %s kind %d grains %d sequence %u gain %.9g\n",
                    candidates(h, v->start_post, buf, sizeof buf), (int)v->path_kind, v->path_grains,
                    v->sequence, (double)v->gain);
            break;
        }
    }
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(o->log_tmp, h->log_path) != 0) {
        fail("cannot write %s", h->log_path);
        unlink(o->log_tmp);
        return -1;
    }
    return 0;
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(FILE *to) {
    fprintf(to,
            "usage: " HOST_NAME " MODEL -o OUT.wav [options]\n"
            "  -o, --output FILE     32-bit float WAV at the host rate\n"
            "  -b, --block N         frames per process call (1..4096), default 64\n"
            "      --variable        random block sizes in 1..N\n"
            "  -r, --rate HZ         host sample rate (default: the model's)\n"
            "  -s, --seconds S       length of the score, default 2\n"
            "      --seed K          seed of every voice, default 1\n"
            "  -t, --threads N       synth CPU threads, default 1\n"
            "      --free-run        do not pace the blocks in real time (as fast as possible,\n"
            "                        but waiting for the control thread's due posts)\n"
            "      --log FILE        text log: voices and the frames their events applied at\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    host *h = calloc(1, sizeof *h);
    if (!h) return 1;
    h->block = 64;
    h->seconds = 2.0;
    h->seed = 1;
    h->threads = 1;
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"block", required_argument, 0, 'b'},
        {"variable", no_argument, 0, 'V'},     {"rate", required_argument, 0, 'r'},
        {"seconds", required_argument, 0, 's'}, {"seed", required_argument, 0, 'S'},
        {"threads", required_argument, 0, 't'}, {"free-run", no_argument, 0, 'F'},
        {"log", required_argument, 0, 'L'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c, rc = 1;
    outputs files;
    memset(&files, 0, sizeof files);
    while ((c = getopt_long(argc, argv, "o:b:r:s:t:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'o': h->out_path = optarg; break;
        case 'L': h->log_path = optarg; break;
        case 'V': h->variable_blocks = 1; break;
        case 'F': h->free_run = 1; break;
        case 'b':
            if (parse_int(optarg, 1, 4096, &h->block)) { fail("--block must be 1..4096"); goto done; }
            break;
        case 'r':
            if (parse_int(optarg, 8000, 192000, &h->rate)) { fail("--rate must be 8000..192000"); goto done; }
            break;
        case 't':
            if (parse_int(optarg, 1, 64, &h->threads)) { fail("--threads must be 1..64"); goto done; }
            break;
        case 's':
            h->seconds = strtod(optarg, &end);
            if (!end || *end || !(h->seconds >= 0.1 && h->seconds <= 600)) {
                fail("--seconds must be 0.1..600");
                goto done;
            }
            break;
        case 'S':
            errno = 0;
            h->seed = strtoull(optarg, &end, 10);
            if (errno || !end || *end) { fail("--seed must be an unsigned integer"); goto done; }
            break;
        case 'h': usage(stdout); rc = 0; goto done;
        default: usage(stderr); rc = 2; goto done;
        }
    }
    if (optind + 1 != argc || !h->out_path) {
        usage(stderr);
        rc = 2;
        goto done;
    }
    h->model_path = argv[optind];

    if (ngs_model_init_from_file(h->model_path, ngs_model_default_params(), &h->model) != NGS_STATUS_OK ||
        ngs_model_get_info(h->model, &h->info) != NGS_STATUS_OK) {
        fail("%s", ngs_last_error());
        goto done;
    }
    ngs_synth_params p = ngs_synth_default_params();
    p.sample_rate = h->rate;
    p.max_block = h->block;
    p.max_voices = MAX_VOICES;
    p.n_threads = h->threads;
    p.seed = h->seed;
    if (ngs_synth_init(h->model, p, &h->synth) != NGS_STATUS_OK) {
        fail("%s", ngs_last_error());
        goto done;
    }
    h->host_rate = h->rate ? h->rate : h->info.sample_rate;
    if (build_score(h) != 0) {
        fail("out of memory");
        goto done;
    }
    if (open_outputs(h, &files) != 0) goto done;
    /* Room for the score plus 30 s of late posts; touched now so that the audio thread
       never takes a page fault on fresh memory. */
    h->capacity = h->end_frame + 30u * (uint64_t)h->host_rate;
    h->out = malloc(sizeof(float) * (size_t)h->capacity);
    if (!h->out) {
        fail("out of memory");
        goto done;
    }
    memset(h->out, 0, sizeof(float) * (size_t)h->capacity);

    pthread_t audio, control;
    if (pthread_create(&audio, NULL, audio_thread, h) != 0) {
        fail("cannot start the audio thread");
        goto done;
    }
    if (pthread_create(&control, NULL, control_thread, h) != 0) {
        atomic_store(&h->failed, 1);
        atomic_store(&h->poster_done, 1);
        pthread_join(audio, NULL);
        fail("cannot start the control thread");
        goto done;
    }
    pthread_join(control, NULL);
    pthread_join(audio, NULL);
    if (atomic_load(&h->failed)) {
        fail("%s", h->audio_error[0] ? h->audio_error : h->control_error);
        goto done;
    }
    ngs_synth_stats st;
    ngs_synth_get_stats(h->synth, &st);
    for (int k = 0; k < h->n_posts; ++k)
        if (h->posts[k].n_cand < 1 || h->posts[k].n_cand > 8) {
            fail("post %d: %d candidate blocks", k, h->posts[k].n_cand);
            goto done;
        }
    if (st.events_dropped != 0 || st.events_applied != (uint64_t)h->n_posts) {
        fail("%llu events dropped, %llu of %d applied", (unsigned long long)st.events_dropped,
             (unsigned long long)st.events_applied, h->n_posts);
        goto done;
    }
    if (h->log_path && write_log(h, &files) != 0) goto done;
    if (write_wav(h, &files) != 0) {
        if (h->log_path) unlink(h->log_path);
        goto done;
    }
    fprintf(stderr,
            HOST_NAME ": %llu frames at %d Hz in %llu blocks of %s%d, latency %d frames; "
            "%llu grains, %d voices, worst block %.1f %% of its period, mean process %.1f us, "
            "%llu late blocks%s\n",
            (unsigned long long)h->frames_rendered, h->host_rate, (unsigned long long)h->blocks,
            h->variable_blocks ? "1.." : "", h->block, ngs_synth_latency(h->synth),
            (unsigned long long)st.grains, h->n_voices, 100.0 * h->worst_block_fraction,
            st.process_mean_us, (unsigned long long)h->xruns, h->free_run ? " (free run)" : "");
    rc = 0;
done:
    discard_outputs(&files);
    for (int i = 0; i < h->n_voices; ++i) free(h->voices[i].z);
    free(h->out);
    ngs_synth_free(h->synth);
    ngs_model_free(h->model);
    free(h);
    return rc;
}
