/*
 * ngs: Neural Granular Sound Synthesis inference engine, C API.
 *
 * Usage:
 *
 *     ngs_model *model = NULL;
 *     if (ngs_model_init_from_file("drums.safetensors", ngs_model_default_params(), &model)
 *         != NGS_STATUS_OK) {
 *         fprintf(stderr, "ngs: %s\n", ngs_last_error());
 *         return 1;
 *     }
 *     ngs_context *ctx = NULL;
 *     ngs_context_init(model, ngs_context_default_params(), &ctx);
 *
 *     ngs_model_info info;
 *     ngs_model_get_info(model, &info);
 *     float *audio = malloc(info.sample_length * sizeof(float));
 *     ngs_sample_params sp = ngs_sample_default_params();
 *     sp.class_index = ngs_model_find_class(model, "Kick");
 *     sp.seed = 42;
 *     ngs_sample(ctx, sp, audio, info.sample_length);   // one kick at info.sample_rate
 *
 *     ngs_context_free(ctx);
 *     ngs_model_free(model);
 *
 * Thread safety: an ngs_model is immutable after ngs_model_init_* returns and may be
 * shared by any number of threads. An ngs_context holds the scratch memory of one caller:
 * use one context per thread (any number of contexts may share one model). Functions that
 * take no handle are thread-safe. ngs_last_error() is per thread.
 *
 * Errors: every function that can fail returns an ngs_status; on failure it writes
 * nothing to its outputs that the caller could mistake for a result (output buffers
 * may be partly written but the status says so), and ngs_last_error() describes the
 * problem in one line. No function throws, aborts or exits on bad input.
 * Finite inputs can still overflow the float range (a temperature of FLT_MAX, latents
 * of 3e38): a call whose result would hold NaN or Inf returns NGS_STATUS_INVALID_ARGUMENT
 * and zeroes all of its outputs (for ngs_preprocess, the audio it processes in place);
 * a status OK always comes with finite outputs. Input and output buffers of one call
 * must not overlap (NGS_STATUS_INVALID_ARGUMENT): no process works in place except
 * ngs_preprocess.
 *
 * Memory: all audio and latent buffers are owned by the caller. After
 * ngs_context_init(), the processing functions do not allocate for requests within the
 * context's configured limits (ngs_context_params).
 *
 * Layout: latent series are row-major [n_grains][z_dim] floats; audio is mono float at
 * the model's sample rate.
 *
 * The exact semantics of every process (random streams, order of operations, fades) are
 * in docs/PROCESSES.md; the Python reference (weights_converter) implements the same.
 */
#ifndef NGS_NGS_H
#define NGS_NGS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && !defined(NGS_STATIC)
#if defined(NGS_BUILDING_LIBRARY)
#define NGS_API __declspec(dllexport)
#else
#define NGS_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define NGS_API __attribute__((visibility("default")))
#else
#define NGS_API
#endif

#if defined(__GNUC__)
#define NGS_DEPRECATED(func, hint) func __attribute__((deprecated(hint)))
#else
#define NGS_DEPRECATED(func, hint) func
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define NGS_VERSION_MAJOR 0
#define NGS_VERSION_MINOR 1
#define NGS_VERSION_PATCH 0
/* The model file format version this header describes (docs/MODEL_FORMAT.md). */
#define NGS_MODEL_FORMAT_VERSION 1

typedef enum ngs_status {
    NGS_STATUS_OK = 0,
    NGS_STATUS_INVALID_ARGUMENT = 1, /* null pointer, wrong size, NaN/Inf input, unknown class,
                                        overlapping buffers, result out of float range */
    NGS_STATUS_IO_ERROR = 2,         /* file cannot be opened or read */
    NGS_STATUS_BAD_MODEL = 3,        /* malformed, truncated or inconsistent model file */
    NGS_STATUS_UNSUPPORTED = 4,      /* format version, backend or feature not available */
    NGS_STATUS_CAPACITY = 5,         /* request larger than the context was configured for */
    NGS_STATUS_OUT_OF_MEMORY = 6,
    NGS_STATUS_BACKEND_ERROR = 7,    /* the compute backend (e.g. CUDA) failed */
    NGS_STATUS_INTERNAL_ERROR = 8,
} ngs_status;

typedef enum ngs_backend {
    NGS_BACKEND_AUTO = 0, /* CUDA when available, else CPU */
    NGS_BACKEND_CPU = 1,
    NGS_BACKEND_CUDA = 2,
} ngs_backend;

typedef enum ngs_class_none { NGS_CLASS_NONE = -1 } ngs_class_none;

/* Arithmetic of a context (docs/PRECISION.md). FP32: the reference (within 1e-5 relative
   L2 of the PyTorch model). FAST: the CPU backend multiplies in bf16 with fp32
   accumulation (the sequence VAE's linears and the grain decoder's MLP; the CPU's
   AVX512_BF16 dot product) and runs the recurrence in int8 with exact integer sums
   (AVX512_VNNI): faster, within the documented errors. Where the CPU lacks bf16, and on CUDA, a FAST context runs FP32
   (ngs_context_precision says which). */
typedef enum ngs_precision {
    NGS_PRECISION_FP32 = 0,
    NGS_PRECISION_FAST = 1,
} ngs_precision;

typedef struct ngs_model ngs_model;
typedef struct ngs_context ngs_context;

/* ---- library ------------------------------------------------------------------------ */

/* Version string "MAJOR.MINOR.PATCH" of the linked library; never NULL. */
NGS_API const char *ngs_version(void);
/* Model format version the linked library reads. */
NGS_API uint32_t ngs_model_format_version(void);
/* Static description of a status code; never NULL. */
NGS_API const char *ngs_status_string(ngs_status status);
/* Message of the last failing call on this thread ("" if none); valid until the next
   failing call on this thread. */
NGS_API const char *ngs_last_error(void);
/* NGS_STATUS_OK if the backend can run here; otherwise NGS_STATUS_UNSUPPORTED and
   ngs_last_error() says why (e.g. "CUDA: no device found"). */
NGS_API ngs_status ngs_backend_probe(ngs_backend backend);
/* Name of a backend ("auto", "cpu", "cuda"); never NULL. */
NGS_API const char *ngs_backend_name(ngs_backend backend);

/* ---- model -------------------------------------------------------------------------- */

typedef struct ngs_model_params {
    ngs_backend backend; /* default NGS_BACKEND_AUTO */
    int cuda_device;     /* default 0 */
} ngs_model_params;

NGS_API ngs_model_params ngs_model_default_params(void);

/* Loads a model file: reads it whole into memory (at most 1 GiB), so the model does not
   depend on the file afterwards (it may be rewritten, truncated or deleted). Only regular
   files are read: a FIFO, device or folder gives NGS_STATUS_IO_ERROR at once (the open
   never blocks). On failure *out is set to NULL. */
NGS_API ngs_status ngs_model_init_from_file(const char *path, ngs_model_params params,
                                            ngs_model **out);
/* Loads a model from memory; the bytes are copied, the caller may free them after. */
NGS_API ngs_status ngs_model_init_from_buffer(const void *data, size_t size,
                                              ngs_model_params params, ngs_model **out);
/* Frees a model; NULL is ignored. All contexts of the model must be freed first. */
NGS_API void ngs_model_free(ngs_model *model);

typedef struct ngs_model_info {
    int sample_rate;      /* Hz */
    int grain_length;     /* l_grain, samples */
    int hop_size;         /* l_grain / 4 */
    int n_grains;         /* grains of the training series (one-shot length) */
    size_t sample_length; /* (n_grains + 3) * hop_size: samples of a one-shot */
    int z_dim;            /* grain latent size */
    int filter_size;      /* l_grain / 2 + 1 */
    int has_latent_model; /* 1 if the file holds the sequence VAE */
    int e_dim;            /* embedding size (0 without latent model) */
    int n_classes;        /* class count (0 if unconditional) */
    int weight_bits;      /* 32 or 16: storage precision of the weights */
    ngs_backend backend;  /* the backend the model runs on (never AUTO) */
} ngs_model_info;

NGS_API ngs_status ngs_model_get_info(const ngs_model *model, ngs_model_info *out);
/* Class name at index, or NULL if out of range. */
NGS_API const char *ngs_model_class_name(const ngs_model *model, int index);
/* Index of a class by name (case-insensitive), or -1 if there is none. */
NGS_API int ngs_model_find_class(const ngs_model *model, const char *name);
/* Raw metadata value of the model file (e.g. "ngs.config"), or NULL if absent. */
NGS_API const char *ngs_model_metadata(const ngs_model *model, const char *key);

/* Samples produced by decoding n_grains grains: (n_grains + 3) * hop_size (0 if n < 1),
   computed in size_t (no overflow for any int n_grains). */
NGS_API size_t ngs_model_audio_length(const ngs_model *model, int n_grains);
/* Grains of a free synthesis of `seconds` (docs/MODEL_SPEC.md §2): tar_l = floor(seconds * sr /
   l_grain) * l_grain, n = 4 * tar_l / l_grain - 3; 0 if shorter than one grain. */
NGS_API int ngs_model_grains_for_duration(const ngs_model *model, double seconds);

/* ---- context ------------------------------------------------------------------------ */

typedef struct ngs_context_params {
    int max_grains; /* longest series one call may decode/encode; 0 = 8 x the model's n_grains */
    int n_threads;  /* CPU threads used by one call; default 1 */
    size_t max_loop_length; /* longest ngs_render_loop in samples; 0 = 10 s at the model's
                               rate */
    ngs_precision precision; /* default NGS_PRECISION_FP32; FAST: see ngs_precision */
} ngs_context_params;

NGS_API ngs_context_params ngs_context_default_params(void);
/* Allocates the context's whole workspace. */
NGS_API ngs_status ngs_context_init(const ngs_model *model, ngs_context_params params,
                                    ngs_context **out);
NGS_API void ngs_context_free(ngs_context *ctx);
/* The precision the context runs: its params' precision, or NGS_PRECISION_FP32 where FAST
   is unavailable (no bf16 on this CPU, CUDA backend). NGS_PRECISION_FP32 for NULL. */
NGS_API ngs_precision ngs_context_precision(const ngs_context *ctx);

/* ---- grain VAE ---------------------------------------------------------------------- */

typedef struct ngs_decode_params {
    uint64_t seed;       /* noise stream key (docs/RANDOM.md) */
    uint32_t sequence;   /* noise stream sequence, default 0 */
} ngs_decode_params;

NGS_API ngs_decode_params ngs_decode_default_params(void);

/* Decodes z [n_grains][z_dim] into (n_grains + 3) * hop samples written to audio.
   audio_len must be at least that; exactly that many samples are written.
   NGS_STATUS_INVALID_ARGUMENT for NaN/Inf in z, NGS_STATUS_CAPACITY if n_grains >
   the context's max_grains. */
NGS_API ngs_status ngs_decode(ngs_context *ctx, const float *z, int n_grains,
                              ngs_decode_params params, float *audio, size_t audio_len);

typedef struct ngs_encode_params {
    uint64_t seed;     /* key of the reparametrisation eps (only used for z_out) */
    uint32_t sequence; /* default 0 */
} ngs_encode_params;

NGS_API ngs_encode_params ngs_encode_default_params(void);

/* Encodes audio of n_samples = (n + 3) * hop samples (n >= 1) into n grain latents.
   Any of mu, logvar, z may be NULL; each non-NULL one receives [n][z_dim] floats and must
   hold max_grains * z_dim (max_grains >= n; a negative max_grains is an error). None of
   them may overlap audio or each other. *n_grains_out (may be NULL) receives n. z = mu +
   eps * exp(0.5 * logvar). NGS_STATUS_INVALID_ARGUMENT if n_samples is not of that form. */
NGS_API ngs_status ngs_encode(ngs_context *ctx, const float *audio, size_t n_samples,
                              ngs_encode_params params, float *mu, float *logvar, float *z,
                              int max_grains, int *n_grains_out);

/* ---- sequence VAE (needs a latent model) --------------------------------------------- */

/* e [e_dim] = temperature * standard normals (domain 3 of docs/RANDOM.md). */
NGS_API ngs_status ngs_embedding_sample(const ngs_model *model, float temperature,
                                        uint64_t seed, uint32_t sequence, float *e);
/* Decodes an embedding into a z series [n_grains][z_dim] (n_grains >= 1; the model's
   training length is info.n_grains). class_index is NGS_CLASS_NONE for unconditional
   models, else in [0, n_classes). */
NGS_API ngs_status ngs_latent_decode(ngs_context *ctx, const float *e, int class_index,
                                     int n_grains, float *z);
/* Encodes a z series [n_grains][z_dim] into the embedding's mean and log-variance
   ([e_dim] each; either may be NULL). */
NGS_API ngs_status ngs_latent_encode(ngs_context *ctx, const float *z, int n_grains,
                                     float *e_mu, float *e_logvar);

typedef struct ngs_sample_params {
    int class_index;   /* NGS_CLASS_NONE for unconditional models */
    float temperature; /* default 1 */
    uint64_t seed;
    int count;         /* one-shots to render, default 1; sample i uses sequence i */
} ngs_sample_params;

NGS_API ngs_sample_params ngs_sample_default_params(void);

/* Renders count one-shots of info.sample_length samples each, back to back in audio
   (audio_len >= count * info.sample_length). */
NGS_API ngs_status ngs_sample(ngs_context *ctx, ngs_sample_params params, float *audio,
                              size_t audio_len);

/* Renders `steps` one-shots (steps >= 2) along the line between the embeddings of
   sequence 0 and sequence 1 of params.seed: sound k uses e = e0 + (e1 - e0) k / (steps -
   1) and noise sequence k. params.count is ignored. */
NGS_API ngs_status ngs_sample_interpolation(ngs_context *ctx, ngs_sample_params params,
                                            int steps, float *audio, size_t audio_len);

/* ---- free synthesis: latent paths (docs/PATHS.md) ------------------------------------ */

typedef enum ngs_path_kind {
    NGS_PATH_KIND_LINE = 0,
    NGS_PATH_KIND_CIRCLE = 1,
    NGS_PATH_KIND_SPIRAL = 2,
    NGS_PATH_KIND_RANDOM = 3,
    NGS_PATH_KIND_BACK_AND_FORTH = 4,
} ngs_path_kind;

typedef struct ngs_path_params {
    ngs_path_kind kind;
    float temperature; /* default 1 */
    uint64_t seed;
    uint32_t sequence; /* default 0 */
    float turns;       /* circle, spiral: default 1 */
    int points;        /* random: default 4, in [2, 2^24] */
    int legs;          /* back_and_forth: default 4, in [1, 2^24] */
    float gamma;       /* back_and_forth step shape: default 2 */
} ngs_path_params;

NGS_API ngs_path_params ngs_path_default_params(void);
/* Writes a path of n_grains latents to z [n_grains][z_dim]. */
NGS_API ngs_status ngs_path_generate(const ngs_model *model, ngs_path_params params,
                                     int n_grains, float *z);
/* Parses "line", "circle", "spiral", "random", "back_and_forth"; -1 if unknown. */
NGS_API int ngs_path_kind_from_name(const char *name);

/* ---- resynthesis --------------------------------------------------------------------- */

/* Progress of a long call: fraction of the work done, in (0, 1]. */
typedef void (*ngs_progress_callback)(float fraction, void *user_data);

typedef struct ngs_resynth_params {
    uint64_t seed;      /* noise key */
    int segment_grains; /* grains per segment, default 0 = the model's n_grains */
    int crossfade;      /* fade-out/fade-in overlap of two segments in samples, default
                           0 = one hop; at most half a segment */
    ngs_progress_callback progress; /* called after each segment with the fraction done
                                       (0, 1], the last call with exactly 1; NULL = none
                                       (default); runs on the calling thread, must not
                                       call back into the same context */
    void *progress_user_data;       /* passed to progress; default NULL */
} ngs_resynth_params;

NGS_API ngs_resynth_params ngs_resynth_default_params(void);

/* Applies docs/MODEL_SPEC.md §6 pre-processing in place to mono audio at the model's rate:
   subtract the mean, 50 Hz high-pass biquad (Q 0.707), and normalise the peak to 0.9 if
   it is >= 1 or if normalize is non-zero. */
NGS_API ngs_status ngs_preprocess(const ngs_model *model, float *audio, size_t n_samples,
                                  int normalize);
/* Encodes (mu) and decodes audio of any length >= 1 in contiguous segments of
   segment_grains grains joined with an equal-gain linear fade-out/fade-in of `crossfade`
   samples; the last segment is zero-padded. Writes exactly n_samples samples to out, which
   must not overlap audio: in-place resynthesis (out == audio) is not allowed and gives
   NGS_STATUS_INVALID_ARGUMENT (later segments read input that earlier ones would have
   overwritten). Calls params.progress (if set) once per segment k of K with (k + 1) / K. */
NGS_API ngs_status ngs_resynthesize(ngs_context *ctx, const float *audio, size_t n_samples,
                                    ngs_resynth_params params, float *out);

/* ---- drum machine -------------------------------------------------------------------- */

typedef struct ngs_loop_event {
    int class_index;
    float onset;     /* fraction of the loop, [0, 1) */
    float amplitude; /* [0, 1] */
} ngs_loop_event;

typedef struct ngs_loop_params {
    float temperature; /* default 1 */
    uint64_t seed;     /* event i samples with sequence i */
} ngs_loop_params;

NGS_API ngs_loop_params ngs_loop_default_params(void);

/* Renders a loop of loop_length samples: each event is a fresh one-shot of its class with
   its mean removed, peak-normalised and scaled by its amplitude, added at
   floor(onset * loop_length) and cut at the loop's end; each class track and then the mix
   is scaled to a peak of 0.95 only if it exceeds 0.95 (docs/MODEL_SPEC.md §1). */
NGS_API ngs_status ngs_render_loop(ngs_context *ctx, const ngs_loop_event *events,
                                   int n_events, ngs_loop_params params, float *audio,
                                   size_t loop_length);

/* ---- real-time synth (docs/SYNTH.md) ------------------------------------------------ */

/* A streaming synthesiser for a host's audio callback, shaped like a CLAP plug-in:
   ngs_synth_init() (any thread, not real-time) allocates everything for the host's rate,
   block size and voice count; ngs_synth_process() runs on the audio thread and renders one
   block, applying the block's events at their exact frames; ngs_synth_post() hands events
   to the audio thread from any other thread. Three kinds of voice: one-shots of the
   sequence VAE (the RNN advances one step per hop, so a trigger costs microseconds), free
   synthesis from a latent target or a latent path, and live resynthesis of the input
   signal. At each hop all voices that need a grain are decoded in one batched call.

   Real-time contract: ngs_synth_process(), ngs_synth_post() and ngs_synth_voice_new() never
   allocate, lock, wait or make system calls; process is wait-free with respect to post
   (post itself is lock-free). With params.n_threads > 1, process may spin (never block)
   until a worker finishes a share of the hop's work that it has already taken.
   One thread at a time may call ngs_synth_process() / ngs_synth_reset(); any number of
   threads may call ngs_synth_post() and ngs_synth_voice_new() concurrently with it.
   The output does not depend on the host's block sizes. The synth computes through the
   model's backend when that backend streams (per-voice recurrent state, batches of
   independent grains), else on the CPU. The model must outlive the synth. */

typedef struct ngs_synth ngs_synth;

typedef enum ngs_synth_voice_kind {
    NGS_SYNTH_VOICE_ONE_SHOT = 0, /* a one-shot of a class (needs the sequence VAE); ends
                                     by itself after the model's n_grains grains */
    NGS_SYNTH_VOICE_FREE = 1,     /* one grain per hop from a latent target (event z) or a
                                     latent path (event path); runs until stopped */
    NGS_SYNTH_VOICE_RESYNTH = 2,  /* encodes the input signal grain by grain and decodes it
                                     (style transfer); runs until stopped */
} ngs_synth_voice_kind;

typedef enum ngs_synth_event_type {
    NGS_SYNTH_EVENT_START = 0,      /* start voice `voice` of `kind` (an id already playing
                                       is stopped first, with the default fade) */
    NGS_SYNTH_EVENT_STOP = 1,       /* fade voice `voice` out over `fade` frames, then end it */
    NGS_SYNTH_EVENT_RELEASE = 2,    /* free / resynth voice: the next grain is its last and
                                       gets the offline last-grain window, then the tail
                                       plays out (the stream then equals the offline decode
                                       of the same grains); a one-shot: same as STOP */
    NGS_SYNTH_EVENT_SET_LATENT = 3, /* free voice: new latent target `z`, reached after
                                       `glide` grains (linear in z) */
    NGS_SYNTH_EVENT_SET_GAIN = 4,   /* new gain, reached linearly over `fade` frames */
    NGS_SYNTH_EVENT_STOP_ALL = 5,   /* STOP every voice (`voice` ignored) */
} ngs_synth_event_type;

/* Seed value that asks the synth to pick the voice's random streams: key = the synth's
   params.seed, sequence = the number of such starts since init / reset. */
#define NGS_SYNTH_SEED_AUTO UINT64_MAX

/* One event. Fields not used by its type are ignored. Start from
   ngs_synth_default_event(type). */
typedef struct ngs_synth_event {
    ngs_synth_event_type type;
    uint32_t frame;        /* ngs_synth_process: offset in the block, [0, n_frames); the
                              event applies at exactly that frame. ngs_synth_post: ignored
                              (the event applies at the start of the next block) */
    int32_t voice;         /* voice id > 0, chosen by the caller or by ngs_synth_voice_new */
    ngs_synth_voice_kind kind; /* START */
    int class_index;       /* START one-shot: class, or NGS_CLASS_NONE (unconditional) */
    float temperature;     /* START one-shot: embedding temperature, default 1 */
    uint64_t seed;         /* START: key of the voice's random streams (embedding and grain
                              noise), default NGS_SYNTH_SEED_AUTO */
    uint32_t sequence;     /* START with an explicit seed: stream sequence (a one-shot
                              equals one-shot `sequence` of ngs_sample with that seed;
                              free / resynth voices draw grain noise uniforms(1, sequence,
                              g)); default 0 */
    float gain;            /* START, SET_GAIN: linear gain, finite and >= 0; default 1 */
    const float *z;        /* START free voice (unless use_path), SET_LATENT: z_dim floats,
                              finite; copied (post copies them into the queue) */
    int use_path;          /* START free voice: 1 = play `path` over path_grains grains
                              instead of a constant z, then release; default 0 */
    ngs_path_params path;  /* START free voice with use_path: as ngs_path_generate */
    int path_grains;       /* START free voice with use_path: grains of the path, >= 1.
                              START free voice with a z, resynth voice: > 0 = the voice
                              ends by itself after that many grains (the last with the
                              offline last-grain window), 0 (default) = until stopped */
    float glide;           /* SET_LATENT: grains over which z moves linearly to the new
                              target (<= 1: the next grain uses it); default 1 */
    int32_t fade;          /* STOP, STOP_ALL, SET_GAIN, START (fade-in): frames at the host
                              rate, >= 0; -1 = the synth's default (params.fade_frames
                              for STOP / STOP_ALL, 0 for START and SET_GAIN); default -1 */
} ngs_synth_event;

NGS_API ngs_synth_event ngs_synth_default_event(ngs_synth_event_type type);

typedef struct ngs_synth_params {
    int sample_rate;    /* host rate in Hz, 8000..192000; 0 (default) = the model's rate.
                           Another rate than the model's is converted inside the synth
                           (ngs_synth_params.resampler); its delay is part of
                           ngs_synth_latency() */
    int max_block;      /* largest n_frames of one process call, default 4096 */
    int max_voices;     /* voices playing at once, default 16; a START beyond it steals
                           a voice (oldest one-shot first, then the oldest voice) */
    int n_threads;      /* CPU threads for the per-hop work, default 1: n_threads - 1
                           workers started at init share each hop's voices with the
                           audio thread, which never waits for an idle one (same output
                           for any count; docs/SYNTH.md) */
    uint64_t seed;      /* key of NGS_SYNTH_SEED_AUTO voices, default 0 */
    int queue_size;     /* slots of the ngs_synth_post queue, default 256 */
    int fade_frames;    /* default stop fade in host frames; -1 (default) = 5 ms */
    int spread;         /* 1 = spread each hop's grain work over the next hop in
                           slices (as many as the hop has blocks of max_block frames,
                           at least 4), at the cost of one hop of latency (for host
                           blocks much smaller than a hop); default 0 */
    int resampler;      /* rate converter: NGS_SYNTH_RESAMPLER_POLYPHASE (5, default:
                           the ngs polyphase converter, used when its phase tables fit
                           64 Ki floats, else SRC_SINC_MEDIUM_QUALITY), or a libsamplerate
                           converter (SRC_SINC_BEST_QUALITY = 0 .. SRC_LINEAR = 4) */
    ngs_precision precision; /* NGS_PRECISION_FP32 (default: the offline processes' fp32
                           numbers) or NGS_PRECISION_FAST (the backend's fast sessions:
                           bf16 products with fp32 sums, docs/PRECISION.md; one-shots then
                           match the offline fast-mode renders within its tolerances);
                           FAST runs FP32 where the backend or the CPU has no fast path */
} ngs_synth_params;

/* ngs_synth_params.resampler: the ngs rational polyphase converter (docs/SYNTH.md
   "Sample rates": Kaiser-windowed sinc, passband to 0.45 of the lower rate, >= 90 dB
   from 0.5 of it, zero group delay). */
#define NGS_SYNTH_RESAMPLER_POLYPHASE 5

NGS_API ngs_synth_params ngs_synth_default_params(void);

/* Allocates a synth for the model: voices, queues, per-hop work buffers, resamplers.
   Not real-time. NGS_STATUS_INVALID_ARGUMENT for out-of-range params; *out = NULL on
   failure. */
NGS_API ngs_status ngs_synth_init(const ngs_model *model, ngs_synth_params params,
                                  ngs_synth **out);
/* Frees a synth; NULL is ignored. No other call on it may be running. */
NGS_API void ngs_synth_free(ngs_synth *synth);

/* Audio thread. Renders n_frames (1..max_block) mono frames at the host rate into out
   (overwritten), applying the events first posted and then `events` (sorted by frame;
   n_events may be 0 and events NULL). in: n_frames input frames for resynthesis voices,
   or NULL for silence. Bad events (unknown type, kind, class or voice id, NaN latent,
   frame outside the block, out of order) are dropped and counted in ngs_synth_stats; they
   never fail the block. NGS_STATUS_INVALID_ARGUMENT only for a NULL synth / out,
   n_frames outside 1..max_block, n_events < 0 or NULL events with n_events > 0 (out is
   then zeroed when it can be). */
NGS_API ngs_status ngs_synth_process(ngs_synth *synth, const ngs_synth_event *events,
                                     int n_events, const float *in, float *out,
                                     int n_frames);
/* Any thread, lock-free (never blocks or waits; a compare-and-swap claims the slot):
   queues a copy of the event (and of its z) for the start of the next block. NGS_STATUS_CAPACITY when the queue is full (the event is not queued and
   counted as a queue overflow); NGS_STATUS_INVALID_ARGUMENT for NULL arguments. */
NGS_API ngs_status ngs_synth_post(ngs_synth *synth, const ngs_synth_event *event);
/* Any thread, wait-free: a fresh voice id (> 0), unique for the synth's life. */
NGS_API int32_t ngs_synth_voice_new(ngs_synth *synth);

/* Frames (host rate) from an event's frame to the first output frame of the voice it
   starts (one-shot and free voices); constant for the synth's life. At the model's
   rate: hop - 1 (2 hop - 1 with spread). At another host rate events land on the
   nearest model-rate sample, within half a model sample of this. */
NGS_API int ngs_synth_latency(const ngs_synth *synth);
/* Frames (host rate) from an input frame to its resynthesis in the output (a resynth
   voice started at frame t resynthesises the input from frame t on). */
NGS_API int ngs_synth_input_latency(const ngs_synth *synth);

/* Audio thread (or while process is not running): ends every voice at once, clears the
   queue, the resamplers and the clock, as right after init. Stats are kept. */
NGS_API ngs_status ngs_synth_reset(ngs_synth *synth);

typedef struct ngs_synth_stats {
    uint64_t blocks;           /* process calls */
    uint64_t frames;           /* frames rendered */
    uint64_t events_applied;
    uint64_t events_dropped;   /* bad events */
    uint64_t queue_overflows;  /* posts refused because the queue was full */
    uint64_t voices_stolen;
    uint64_t grains;           /* grains decoded */
    int active_voices;
    double process_max_us;     /* longest process call */
    double process_mean_us;
} ngs_synth_stats;

/* Any thread: counters since init (approximate while process runs). */
NGS_API ngs_status ngs_synth_get_stats(const ngs_synth *synth, ngs_synth_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* NGS_NGS_H */
