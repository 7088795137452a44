/*
 * muki plugin contract: the one C header that a plugin library compiles against.
 *
 * A plugin library is a shared object that exports exactly one symbol, the frozen root entry
 * point `muki_plugin_library_entry` (see the bottom of this file). It returns a static table that
 * describes the library and the plugins it holds. Three plugin kinds exist:
 *
 *   - teacher adapter:       UTF-8 texts  -> logits [B, C] (deterministic) or [K, B, C] (K samples)
 *   - uncertainty strategy:  logits [K, B, C] -> certainty score [B] (higher = more certain)
 *   - integration strategy:  per-teacher logits + scores -> target [B, |Y|] and weight [B]
 *
 * Rules that keep the boundary stable (an "hourglass"):
 *   - Every struct begins with `abi_version` (MUKI_MAKE_VERSION(major, minor)) and `struct_size`
 *     (sizeof as the writer compiled it). Structs only ever grow at the end; a reader must check
 *     `struct_size` before touching a field added in a later minor version (MUKI_HAS_FIELD).
 *     Static asserts in sdk/include/muki/plugin_layout.h pin the layout of every shipped version.
 *   - Who writes the header (1.1): the side that allocates a struct fills its `abi_version` and
 *     `struct_size`. Static tables (library, plugins, parameters, function tables) are the
 *     plugin's. Requests, create arguments and the host API are the host's. Output structs that
 *     the host hands to describe() (muki_teacher_info, muki_uncertainty_info,
 *     muki_integration_info) are allocated, zero-filled and headed by the host; the plugin writes
 *     only the fields that lie within the host's `struct_size` and leaves the header alone. (1.0
 *     plugins may overwrite the header; the host does not rely on it after the call.)
 *   - Arrays of versioned structs (1.1): an array is strided by the `struct_size` of its FIRST
 *     element, never by the reader's own sizeof, and every element of one array has the same
 *     `struct_size`. Use MUKI_ARRAY_AT(). The writer's elements may be older (smaller) or newer
 *     (larger) than the reader's struct; a reader touches only the fields both know. This covers
 *     muki_library_desc.plugins, muki_plugin_desc.params and muki_integration_request.teachers.
 *     A 1.0 plugin strides host-written arrays by its own sizeof, so the host writes the elements
 *     of such an array in the layout of the plugin's own minor version.
 *   - No C++ type, exception or allocation crosses the boundary. Strings are pointer + length
 *     (muki_string_view, UTF-8, not necessarily NUL-terminated). Tensors are DLPack DLTensors.
 *   - Memory: whoever allocates frees. The host allocates every tensor handed to a plugin, inputs
 *     and outputs alike; a plugin writes its results into the output tensors it is given and keeps
 *     no pointer into any of them after the call returns. Strings a plugin returns (names, label
 *     names, descriptions) are owned by the plugin and stay valid while the library is loaded
 *     (static data) or while the instance lives (instance data), as documented per call.
 *   - Errors: every fallible call returns a muki_status and receives a host-owned muki_error
 *     handle. On failure the plugin calls host->set_error(error, status, message) once (the host
 *     copies the message) and returns the same status. A plugin never keeps the handle.
 *   - Logging goes through host->log, never through a logging library's global state.
 *   - Enumerations travel as uint32_t inside structs (an enum's size is the compiler's choice);
 *     muki_status, returned by value, is int-sized on every supported platform.
 *   - Threading: the host calls a given instance from one thread at a time, and may call
 *     different instances (of one library or of several) from different threads at once.
 *     create/destroy/entry may be called from any thread. State that belongs to the whole
 *     process rather than to an instance (LibTorch's default generator and thread pools, the
 *     environment, locale, a library's global settings) is shared with every other plugin in the
 *     process: a plugin that changes it must hold host->lock_process_state for as long as it
 *     relies on it (1.1). A lock private to one library does not protect against another library.
 *   - Teachers (1.1, documenting what 1.0 already assumed): label names are non-empty and unique
 *     within a teacher; logits and features are finite; a text's deterministic outputs must not
 *     depend on the other texts in the request or on how the host batches the texts (up to float
 *     rounding). Stochastic passes may depend on the batch (dropout masks are drawn per batch), but
 *     the same (texts, samples, seed) must give the same output.
 *
 * ABI history:
 *   1.0 (muki 0.1.0): first release.
 *   1.1 (muki 0.2.0): teacher features (MUKI_TEACHER_HAS_FEATURES, muki_teacher_info.feature_dim,
 *        muki_teacher_api.predict_features); uncertainty strategies that read features and are
 *        fitted per teacher (muki_uncertainty_info.flags, muki_uncertainty_api.fit and
 *        .score_teacher); typed option getters and the process-state lock in
 *        muki_host_api; muki_create_args.options and .plugin_name; muki_param_desc.flags
 *        (MUKI_PARAM_ALLOW_NON_FINITE); arrays strided by their elements' struct_size;
 *        feature-level objectives of integration strategies (muki_integration_info
 *        .feature_objective and .feature_weight: DFA, CFL).
 *   1.2 (muki 0.7.0): uncertainty strategies fitted against a background as well as a reference
 *        (MUKI_UNCERTAINTY_NEEDS_BACKGROUND, muki_uncertainty_reference.background_features):
 *        the teacher's features of the experiment's transfer set, e.g. for relative Mahalanobis.
 */
#ifndef MUKI_PLUGIN_H
#define MUKI_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <dlpack/dlpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------------------------------------
 * Versions
 * -------------------------------------------------------------------------------------------- */

/* The ABI this header describes. A host accepts a library whose major equals its own and whose
 * minor is <= its own (a newer plugin may rely on host features an older host lacks). */
#define MUKI_ABI_MAJOR 1
#define MUKI_ABI_MINOR 2
#define MUKI_MAKE_VERSION(major, minor) ((uint32_t)(((uint32_t)(major) << 16) | (uint32_t)(minor)))
#define MUKI_VERSION_MAJOR(v) ((uint32_t)(v) >> 16)
#define MUKI_VERSION_MINOR(v) ((uint32_t)(v)&0xFFFFu)
#define MUKI_ABI_VERSION MUKI_MAKE_VERSION(MUKI_ABI_MAJOR, MUKI_ABI_MINOR)

/* The frozen name of the root symbol. Never changes across ABI versions. */
#define MUKI_PLUGIN_ENTRY_SYMBOL "muki_plugin_library_entry"

/* Whether the struct at `ptr` (its writer's struct_size) is large enough to hold `field` of
 * `type`: check it before reading a field added in a later minor version. (1.1) */
#define MUKI_HAS_FIELD(type, ptr, field) \
  ((size_t)(ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)0)->field))

/* Element `index` of an array of versioned structs whose first element is `base`, strided by the
 * writer's struct_size (see "Arrays of versioned structs" above). `base` must not be NULL. (1.1) */
#define MUKI_ARRAY_AT(type, base, index) \
  ((const type*)(const void*)((const char*)(base) + (size_t)(index) * (base)->struct_size))

/* ----------------------------------------------------------------------------------------------
 * Basic types
 * -------------------------------------------------------------------------------------------- */

/* Status codes. Values are frozen; new codes are only added. (ABI 1.0) */
typedef enum muki_status {
  MUKI_OK = 0,
  MUKI_ERR_INVALID_ARGUMENT = 1, /* a bad call: wrong shape, dtype, count */
  MUKI_ERR_CONFIG = 2,           /* the options handed to create() are unusable */
  MUKI_ERR_IO = 3,               /* a file could not be read or written */
  MUKI_ERR_UNSUPPORTED = 4,      /* the request is valid but this plugin cannot serve it */
  MUKI_ERR_OUT_OF_MEMORY = 5,
  MUKI_ERR_INTERNAL = 6 /* anything else; the message says what */
} muki_status;

/* A UTF-8 string slice. `data` may be NULL only when `size` is 0. (ABI 1.0) */
typedef struct muki_string_view {
  const char* data;
  size_t size;
} muki_string_view;

/* Host-owned error slot, opaque to plugins. (ABI 1.0) */
typedef struct muki_error muki_error;

typedef enum muki_log_level {
  MUKI_LOG_TRACE = 0,
  MUKI_LOG_DEBUG = 1,
  MUKI_LOG_INFO = 2,
  MUKI_LOG_WARN = 3,
  MUKI_LOG_ERROR = 4
} muki_log_level;

/* A plugin's parsed `options` sub-table, owned by the host; valid only during the create() call
 * that received it (muki_create_args.options). Read it with the host API's option_* getters.
 * (ABI 1.1) */
typedef struct muki_options muki_options;

/* The services a host offers a plugin. Handed to init() and to every create(); valid until the
 * library is unloaded. The host's minor is never older than the library's (the handshake
 * refuses that), so every field of the plugin's own header version is present. (ABI 1.0) */
typedef struct muki_host_api {
  uint32_t abi_version; /* the host's ABI version */
  uint32_t struct_size;
  void* host_context; /* pass back unchanged as the first argument of log() */
  /* Logs one message; `source` names the plugin (e.g. "uncertainty/entropy"). Never fails. */
  void (*log)(void* host_context, muki_log_level level, muki_string_view source,
              muki_string_view message);
  /* Records a failure in `error` (copying `message`). Calling it twice keeps the first. */
  void (*set_error)(muki_error* error, muki_status status, muki_string_view message);

  /* ---- ABI 1.1 ----
   * Typed option getters, so that a plugin needs no TOML parser. `key` is NUL-terminated and
   * names a top-level key of the options table. When the key is absent they return MUKI_OK and
   * leave *value untouched (so pre-load it with the default). When it holds another type they
   * return MUKI_ERR_CONFIG with a message in `error` naming the key. The host has already checked
   * every key against the plugin's parameter schema, so a type mismatch means the schema and the
   * code disagree. Results point into host memory that lives as long as `options`. */
  /* 1 when the options table has `key`, else 0. */
  int32_t (*option_has)(const muki_options* options, const char* key);
  /* A TOML boolean; *value becomes 0 or 1. */
  muki_status (*option_bool)(const muki_options* options, const char* key, int32_t* value,
                             muki_error* error);
  muki_status (*option_int)(const muki_options* options, const char* key, int64_t* value,
                            muki_error* error);
  /* A TOML float, or an integer converted to double. */
  muki_status (*option_float)(const muki_options* options, const char* key, double* value,
                              muki_error* error);
  /* A string (PATH parameters arrive made absolute). */
  muki_status (*option_string)(const muki_options* options, const char* key,
                               muki_string_view* value, muki_error* error);
  /* An array of strings: *items points to *count views (both untouched when the key is absent). */
  muki_status (*option_string_array)(const muki_options* options, const char* key,
                                     const muki_string_view** items, uint64_t* count,
                                     muki_error* error);
  /* One recursive process-wide lock shared by every plugin and the host, for state that belongs
   * to the process (see "Threading" above). Never fails; pair every lock with one unlock on the
   * same thread. */
  void (*lock_process_state)(void);
  void (*unlock_process_state)(void);
} muki_host_api;

/* ----------------------------------------------------------------------------------------------
 * Self-description: parameters
 * -------------------------------------------------------------------------------------------- */

typedef enum muki_param_type {
  MUKI_PARAM_BOOL = 0,
  MUKI_PARAM_INT = 1,
  MUKI_PARAM_FLOAT = 2, /* an integer literal is accepted too */
  MUKI_PARAM_STRING = 3,
  /* A string naming a file or folder. The host checks that it exists and rewrites a relative
   * path to an absolute one, relative to the folder of the config file that set it. */
  MUKI_PARAM_PATH = 4,
  MUKI_PARAM_STRING_ARRAY = 5
} muki_param_type;

/* Parameter flags (ABI 1.1). */
/* A FLOAT parameter that accepts nan and +-inf. Without it the host refuses non-finite values. */
#define MUKI_PARAM_ALLOW_NON_FINITE 0x1u

/* One option a plugin accepts in its `options` sub-table. The host rejects unknown keys, wrong
 * types, missing required keys and (unless the flag allows them) non-finite floats before
 * create() is called, with the config file's line and column. All strings are static (valid while
 * the library is loaded). An array of these is strided by its first element's struct_size.
 * (ABI 1.0) */
typedef struct muki_param_desc {
  uint32_t abi_version;
  uint32_t struct_size;
  const char* name; /* NUL-terminated key, e.g. "samples" */
  uint32_t type;    /* a muki_param_type */
  int32_t required;          /* nonzero: the key must be present */
  const char* default_value; /* TOML literal shown in listings ("16", "\"mean\""); NULL if none */
  const char* doc;           /* one line */
  double min_value; /* for INT and FLOAT: inclusive bounds checked by the host; ignored when */
  double max_value; /* min_value > max_value */
  /* ---- ABI 1.1 ---- */
  uint32_t flags; /* MUKI_PARAM_* flags */
} muki_param_desc;

/* ----------------------------------------------------------------------------------------------
 * Creating instances (all kinds)
 * -------------------------------------------------------------------------------------------- */

/* What create() receives. Valid only during the create() call: copy what you keep. (ABI 1.0) */
typedef struct muki_create_args {
  uint32_t abi_version;
  uint32_t struct_size;
  const muki_host_api* host;
  /* The instance's name in the experiment (a teacher's `name`, or the strategy name). */
  muki_string_view instance_name;
  /* The plugin's `options` sub-table as TOML text (a document of key = value lines), already
   * checked against the parameter schema, PATH values made absolute. May be empty. */
  muki_string_view options_toml;
  /* Folder of the experiment's config file, absolute; for plugins that resolve paths themselves. */
  muki_string_view config_dir;
  /* Seed of the experiment; plugins derive their own random streams from it. */
  uint64_t seed;
  /* ---- ABI 1.1 ---- */
  /* The same options, parsed by the host: read them with host->option_*(). Never NULL. */
  const muki_options* options;
  /* The name under which the host found the plugin (its muki_plugin_desc.name), so that a class
   * registered under several names can log under the one in use. */
  muki_string_view plugin_name;
} muki_create_args;

/* ----------------------------------------------------------------------------------------------
 * Teacher adapters
 * -------------------------------------------------------------------------------------------- */

/* Capability flags of a teacher instance. */
#define MUKI_TEACHER_CAN_SAMPLE 0x1u /* predict() accepts samples >= 1 (stochastic passes) */
/* predict_features() returns a pooled feature vector of feature_dim floats per text beside the
 * logits (e.g. the encoder's [CLS] state or a sentence vector). (ABI 1.1) */
#define MUKI_TEACHER_HAS_FEATURES 0x2u

/* (ABI 1.0) */
typedef struct muki_teacher_info {
  uint32_t abi_version;
  uint32_t struct_size;
  uint64_t num_labels; /* C, >= 1 */
  uint32_t flags;      /* MUKI_TEACHER_* */
  /* How the stochastic mode works, one line, e.g. "MC dropout p=0.1 on 12 dropout layers" or
   * "word dropout 0.1 on the input". Owned by the instance; valid until the next describe() on
   * it or its destroy(); the host copies it. Empty if it cannot sample. */
  muki_string_view sampling_note;
  /* ---- ABI 1.1 ---- */
  /* H, the length of a text's feature vector: >= 1 with MUKI_TEACHER_HAS_FEATURES, else 0. */
  uint64_t feature_dim;
} muki_teacher_info;

/* One predict() request. Valid only during the call. (ABI 1.0) */
typedef struct muki_predict_request {
  uint32_t abi_version;
  uint32_t struct_size;
  const muki_string_view* texts; /* B raw UTF-8 texts; the adapter tokenizes */
  uint64_t num_texts;            /* B >= 1 */
  /* 0: one deterministic pass (dropout off); out_logits is [B, C].
   * K >= 1: K stochastic passes (dropout on); out_logits is [K, B, C]. Only when the instance
   * has MUKI_TEACHER_CAN_SAMPLE; otherwise return MUKI_ERR_UNSUPPORTED. */
  uint32_t samples;
  /* Seeds the stochastic passes: the same (texts, samples, seed) gives the same output. */
  uint64_t seed;
} muki_predict_request;

/* (ABI 1.0) */
typedef struct muki_teacher_api {
  uint32_t abi_version;
  uint32_t struct_size;
  /* Makes an instance (loads the model). On success stores an opaque pointer in *instance. */
  muki_status (*create)(const muki_create_args* args, void** instance, muki_error* error);
  /* Frees an instance. NULL is a no-op. */
  void (*destroy)(void* instance);
  muki_status (*describe)(void* instance, muki_teacher_info* info, muki_error* error);
  /* Name of label `index` (< num_labels); owned by the instance. */
  muki_status (*label_name)(void* instance, uint64_t index, muki_string_view* name,
                            muki_error* error);
  /* Writes raw logits (pre-softmax scores; log-probabilities are fine) into out_logits, a
   * host-allocated, C-contiguous float32 CPU tensor of the shape documented above. */
  muki_status (*predict)(void* instance, const muki_predict_request* request,
                         DLTensor* out_logits, muki_error* error);
  /* ---- ABI 1.1 ---- */
  /* predict() that also writes each text's pooled features into out_features, a host-allocated,
   * C-contiguous float32 CPU tensor: [B, H] for samples == 0, [K, B, H] for K stochastic passes
   * (the features of the same passes as the logits). Non-NULL when the instance describes
   * MUKI_TEACHER_HAS_FEATURES; may be NULL otherwise, and then the host never calls it. */
  muki_status (*predict_features)(void* instance, const muki_predict_request* request,
                                  DLTensor* out_logits, DLTensor* out_features, muki_error* error);
} muki_teacher_api;

/* ----------------------------------------------------------------------------------------------
 * Uncertainty strategies
 * -------------------------------------------------------------------------------------------- */

/* Uncertainty flags (ABI 1.1). */
/* score_teacher() needs the teacher's features: the host refuses, before any teacher runs, an
 * experiment that pairs this strategy with a teacher that has none. */
#define MUKI_UNCERTAINTY_NEEDS_FEATURES 0x1u
/* The strategy must see in-distribution reference data of each teacher (fit()) before it scores
 * that teacher, e.g. the class-conditional statistics of its features. */
#define MUKI_UNCERTAINTY_NEEDS_REFERENCE 0x2u
/* (ABI 1.2) fit() also needs the teacher's features of the experiment's transfer set (unlabeled, a
 * mix of the teacher's own labels and others': the texts the teacher is asked about), to tell a
 * region typical of the teacher's reference from one that is merely dense in every text, e.g. a
 * density ratio. Only with both flags above; the host refuses it otherwise. A host ignores the
 * bit in a plugin built against an older minor version. */
#define MUKI_UNCERTAINTY_NEEDS_BACKGROUND 0x4u

/* (ABI 1.0) */
typedef struct muki_uncertainty_info {
  uint32_t abi_version;
  uint32_t struct_size;
  /* How many stochastic teacher passes score() wants: 0 = one deterministic pass (the input
   * then has K = 1 and holds the deterministic logits). */
  uint32_t samples;
  /* ---- ABI 1.1 ---- */
  uint32_t flags; /* MUKI_UNCERTAINTY_* */
} muki_uncertainty_info;

/* In-distribution reference data of one teacher, handed to fit(): texts whose gold label is one
 * of the teacher's labels, run through the teacher deterministically. Valid only during the call:
 * copy what you keep. (ABI 1.1) */
typedef struct muki_uncertainty_reference {
  uint32_t abi_version;
  uint32_t struct_size;
  uint64_t teacher;               /* the teacher's index in the experiment's teacher order */
  muki_string_view teacher_name;  /* for messages */
  const DLTensor* logits;         /* [N, C_i] float32 */
  const DLTensor* features;       /* [N, H_i] float32, or NULL when the teacher has none */
  /* [N] int64: each text's gold label as an index into the teacher's own labels (0..C_i-1), or
   * NULL when the host has no labels for these texts (then use the teacher's predictions). */
  const DLTensor* labels;
  /* ---- ABI 1.2 ---- */
  /* [M, H_i] float32: the teacher's features of the experiment's transfer set (deterministic
   * pass, unlabeled, in no particular order), M >= 1. Non-NULL when the strategy describes
   * MUKI_UNCERTAINTY_NEEDS_BACKGROUND, NULL otherwise. A reader checks MUKI_HAS_FIELD first. */
  const DLTensor* background_features;
} muki_uncertainty_reference;

/* One score_teacher() request. Valid only during the call. (ABI 1.1) */
typedef struct muki_score_request {
  uint32_t abi_version;
  uint32_t struct_size;
  uint64_t teacher;         /* as in muki_uncertainty_reference */
  const DLTensor* logits;   /* [K, B, C_i] float32, K = max(1, info.samples) */
  const DLTensor* features; /* [K, B, H_i] float32 of the same passes, or NULL when the teacher
                             * has none (never NULL with MUKI_UNCERTAINTY_NEEDS_FEATURES) */
} muki_score_request;

/* (ABI 1.0) */
typedef struct muki_uncertainty_api {
  uint32_t abi_version;
  uint32_t struct_size;
  muki_status (*create)(const muki_create_args* args, void** instance, muki_error* error);
  void (*destroy)(void* instance);
  muki_status (*describe)(void* instance, muki_uncertainty_info* info, muki_error* error);
  /* logits: [K, B, C] float32 (K = max(1, info.samples)) of ONE teacher.
   * out_scores: [B] float32, the certainty of each example: higher means the teacher is more
   * likely the expert for it. MUKI's convention is 1 - normalised uncertainty, in [0, 1]. */
  muki_status (*score)(void* instance, const DLTensor* logits, DLTensor* out_scores,
                       muki_error* error);
  /* ---- ABI 1.1 ---- */
  /* Optional (NULL = no reference needed; required with MUKI_UNCERTAINTY_NEEDS_REFERENCE). Called
   * once per teacher, before any score_teacher() for it; calling it again for a teacher replaces
   * what was fitted. May fail with MUKI_ERR_INVALID_ARGUMENT when the data cannot be fitted (too
   * few rows, a label without rows), saying why. */
  muki_status (*fit)(void* instance, const muki_uncertainty_reference* reference,
                     muki_error* error);
  /* Optional. score() with the teacher's identity and features; when present the host calls it
   * instead of score(). Required with MUKI_UNCERTAINTY_NEEDS_FEATURES or _NEEDS_REFERENCE. */
  muki_status (*score_teacher)(void* instance, const muki_score_request* request,
                               DLTensor* out_scores, muki_error* error);
} muki_uncertainty_api;

/* ----------------------------------------------------------------------------------------------
 * Integration strategies
 * -------------------------------------------------------------------------------------------- */

/* How the student is trained on an integration's output. */
typedef enum muki_loss_kind {
  /* mean_b weight[b] * KL(target[b] || softmax(z_s[b] / T)) over the whole union. */
  MUKI_LOSS_KL_UNION = 0,
  /* UHC: target holds each teacher's distribution in its own label block (each block sums to
   * 1); the student's distribution is renormalised within every block and matched to it:
   * mean_b weight[b] * sum_i KL(target[b, Y_i] || softmax(z_s[b, Y_i] / T)). */
  MUKI_LOSS_KL_PER_TEACHER = 1
} muki_loss_kind;

/* Integration flags. */
#define MUKI_INTEGRATION_NEEDS_GOLD 0x1u /* needs gold labels (analysis only, e.g. oracle) */
/* The target does not depend on the certainty scores (e.g. vanilla KD): the host then runs no
 * stochastic teacher passes and reports no teacher-selection figures. A host that does not know
 * this flag still passes scores, which such a strategy ignores. */
#define MUKI_INTEGRATION_IGNORES_SCORES 0x2u

/* A loss on the teachers' and the student's pooled features that the host adds to the KL loss
 * (ABI 1.1). The objective's modules (auto-encoders, projections) are the host's: it builds them
 * for the teachers' feature sizes and the student's, trains them with the student (their own
 * AdamW group: [student.train] feature_lr, default 1e-3, and feature_weight_decay, default 1e-4),
 * and saves them in the resumable training state. Every teacher must give features
 * (MUKI_TEACHER_HAS_FEATURES); the host refuses, by name, one that does not. Weights of the
 * terms below are 1, as in the authors' code; feature_weight scales their sum. */
typedef enum muki_feature_objective {
  MUKI_FEATURE_OBJECTIVE_NONE = 0,
  /* DFA (feature amalgamation): rep = E_t(concat_i f_i), E_t: Linear(sum_i H_i -> H_s);
   * rec = sum_i MSE(split_i(D_t(rep)), f_i), D_t: Linear(H_s -> sum_i H_i);
   * amal = MSE(E_s(f_s), stopgrad(rep)), E_s: Linear(H_s -> H_s); loss = rec + amal. */
  MUKI_FEATURE_OBJECTIVE_DFA = 1,
  /* CFL (common feature learning): h_i = X(relu(A_i(f_i))), h_s = X(relu(A_s(f_s))), with
   * A_i: Linear(H_i -> H_s), A_s: Linear(H_s -> H_s) and a shared extractor
   * X = Linear(H_s -> H_s / 2), ReLU, Linear(H_s / 2 -> max(1, H_s / 4));
   * loss = sum_i MMD^2(h_s, h_i) + sum_i MSE(R_i(h_i), f_i), R_i = Linear(H_s / 4 -> H_i), ReLU,
   * Linear(H_i -> H_i); MMD^2 is the biased multi-kernel RBF estimate on row-L2-normalised
   * features (bandwidths s/4, s/2, s, 2s, 4s around the mean squared distance s of the pooled
   * batch), clamped at 0. */
  MUKI_FEATURE_OBJECTIVE_CFL = 2
} muki_feature_objective;

/* (ABI 1.0) */
typedef struct muki_integration_info {
  uint32_t abi_version;
  uint32_t struct_size;
  uint32_t loss;             /* a muki_loss_kind */
  float student_temperature; /* T applied to the student's logits in the loss; > 0 */
  uint32_t flags;            /* MUKI_INTEGRATION_* */
  /* ---- ABI 1.1 ---- */
  uint32_t feature_objective; /* a muki_feature_objective; left 0 (NONE) by 1.0 plugins */
  /* The feature objective's weight in the student's loss: finite and > 0 when
   * feature_objective is not NONE; ignored otherwise. */
  float feature_weight;
} muki_integration_info;

/* One teacher's outputs on a batch. Valid only during the call. Read an array of these with
 * MUKI_ARRAY_AT (1.1). (ABI 1.0) */
typedef struct muki_teacher_outputs {
  uint32_t abi_version;
  uint32_t struct_size;
  const DLTensor* logits; /* [B, C_i] float32, deterministic pass */
  const DLTensor* scores; /* [B] float32, the uncertainty strategy's certainty scores */
  const int64_t* label_map; /* C_i entries: union index of each of this teacher's labels */
  uint64_t num_labels;      /* C_i */
} muki_teacher_outputs;

/* (ABI 1.0) */
typedef struct muki_integration_request {
  uint32_t abi_version;
  uint32_t struct_size;
  /* N entries, in the experiment's teacher order; strided by teachers[0].struct_size */
  const muki_teacher_outputs* teachers;
  uint64_t num_teachers;                /* N >= 1 */
  uint64_t union_size;                  /* |Y| */
  /* [B] int64 union indices of the gold labels, or NULL when there are none (always NULL when
   * training on the unlabeled transfer set, unless the strategy has NEEDS_GOLD). */
  const DLTensor* gold;
} muki_integration_request;

/* (ABI 1.0) */
typedef struct muki_integration_api {
  uint32_t abi_version;
  uint32_t struct_size;
  muki_status (*create)(const muki_create_args* args, void** instance, muki_error* error);
  void (*destroy)(void* instance);
  muki_status (*describe)(void* instance, muki_integration_info* info, muki_error* error);
  /* out_target: [B, |Y|] float32, a distribution per row (per block for KL_PER_TEACHER);
   * out_weight: [B] float32, >= 0, the per-example loss weight. */
  muki_status (*integrate)(void* instance, const muki_integration_request* request,
                           DLTensor* out_target, DLTensor* out_weight, muki_error* error);
} muki_integration_api;

/* ----------------------------------------------------------------------------------------------
 * The library table
 * -------------------------------------------------------------------------------------------- */

typedef enum muki_plugin_kind {
  MUKI_KIND_TEACHER = 0,
  MUKI_KIND_UNCERTAINTY = 1,
  MUKI_KIND_INTEGRATION = 2
} muki_plugin_kind;

/* One plugin in a library. Static data. An array of these is strided by its first element's
 * struct_size (1.1). (ABI 1.0) */
typedef struct muki_plugin_desc {
  uint32_t abi_version;
  uint32_t struct_size;
  uint32_t kind;           /* a muki_plugin_kind */
  const char* name;        /* case-insensitive identifier used in configs, e.g. "mc_dropout" */
  const char* version;     /* the plugin's own version, e.g. "1.2.0" */
  const char* description; /* one line */
  const muki_param_desc* params; /* num_params entries, strided by params[0].struct_size */
  uint64_t num_params;
  /* Points to a muki_teacher_api, muki_uncertainty_api or muki_integration_api per `kind`. */
  const void* api;
} muki_plugin_desc;

/* (ABI 1.0) */
typedef struct muki_library_desc {
  uint32_t abi_version; /* the ABI the library was compiled against */
  uint32_t struct_size;
  const char* name;    /* e.g. "muki-builtin-strategies" */
  const char* version; /* e.g. "0.1.0" */
  const char* description;
  const muki_plugin_desc* plugins; /* num_plugins entries, strided by plugins[0].struct_size */
  uint64_t num_plugins;
  /* Optional (NULL = nothing to do). Called once after the handshake, before any create();
   * a failure refuses the whole library. */
  muki_status (*init)(const muki_host_api* host, muki_error* error);
  /* Optional. Called once before the library is unloaded, after every instance is destroyed. */
  void (*shutdown)(void);
} muki_library_desc;

/* The root entry point every plugin library exports under this exact name. It must not fail or
 * allocate: it returns a pointer to static data. `host_abi_version` lets a library that supports
 * several ABI majors pick a table; a library that cannot serve it may return NULL. */
typedef const muki_library_desc* (*muki_plugin_entry_fn)(uint32_t host_abi_version);

#if defined(_WIN32)
#define MUKI_PLUGIN_EXPORT __declspec(dllexport)
#else
#define MUKI_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#include <muki/plugin_layout.h>

#endif /* MUKI_PLUGIN_H */
