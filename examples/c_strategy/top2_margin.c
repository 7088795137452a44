/* An uncertainty strategy written in plain C against the C-only SDK target (muki::sdk_c: the one
 * header <muki/plugin.h> and DLPack). It links no C++ runtime and no TOML library: its options
 * come through the host's typed getters (ABI 1.1).
 *
 * Certainty = the top-2 margin of the teacher's averaged distribution,
 *     p = (1/K) sum_k softmax(z_k / T),   certainty = p_(1) - p_(2)   (in [0, 1]),
 * the "margin" confidence of margin-based active learning (Scheffer, Decomain and Wrobel, "Active
 * hidden Markov models for information extraction", IDA 2001): small when the teacher hesitates
 * between two of its labels, as it tends to on a text outside its specialty. A one-label teacher
 * has no second label: its certainty is 1.
 *
 * Options:
 *   samples      INT, default 16: stochastic passes (MC dropout); 0 = one deterministic pass.
 *   temperature  FLOAT, default 1: T in the softmax, > 0. */
#include <muki/plugin.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct top2_margin {
  const muki_host_api* host;
  uint32_t samples;
  double temperature;
} top2_margin;

static muki_status fail(const muki_host_api* host, muki_error* error, muki_status status,
                        const char* message) {
  muki_string_view m = {message, strlen(message)};
  host->set_error(error, status, m);
  return status;
}

static muki_status create(const muki_create_args* args, void** instance, muki_error* error) {
  const muki_host_api* host = args->host;
  int64_t samples = 16;
  double temperature = 1.0;
  muki_status status;
  top2_margin* self;
  /* Absent keys keep the defaults; a wrong type fails with the host's message naming the key. */
  if ((status = host->option_int(args->options, "samples", &samples, error)) != MUKI_OK)
    return status;
  if ((status = host->option_float(args->options, "temperature", &temperature, error)) != MUKI_OK)
    return status;
  /* The host checked the schema's bounds already; these guard direct callers. */
  if (samples < 0 || samples > 4096)
    return fail(host, error, MUKI_ERR_CONFIG, "option 'samples' must lie in [0, 4096]");
  if (!(temperature > 0.0) || !isfinite(temperature))
    return fail(host, error, MUKI_ERR_CONFIG, "option 'temperature' must be a finite number > 0");
  self = (top2_margin*)malloc(sizeof(top2_margin));
  if (self == NULL) return fail(host, error, MUKI_ERR_OUT_OF_MEMORY, "out of memory");
  self->host = host;
  self->samples = (uint32_t)samples;
  self->temperature = temperature;
  *instance = self;
  return MUKI_OK;
}

static void destroy(void* instance) { free(instance); }

static muki_status describe(void* instance, muki_uncertainty_info* info, muki_error* error) {
  (void)error;
  info->samples = ((top2_margin*)instance)->samples;
  return MUKI_OK;
}

static int is_float32_cpu(const DLTensor* t, int32_t ndim) {
  return t != NULL && t->ndim == ndim && t->device.device_type == kDLCPU &&
         t->dtype.code == kDLFloat && t->dtype.bits == 32 && t->dtype.lanes == 1 &&
         t->strides == NULL;
}

static muki_status score(void* instance, const DLTensor* logits, DLTensor* out, muki_error* error) {
  top2_margin* self = (top2_margin*)instance;
  int64_t k, b, c;
  const float* z;
  float* scores;
  double* mean;
  if (!is_float32_cpu(logits, 3) || !is_float32_cpu(out, 1) || out->shape[0] != logits->shape[1])
    return fail(self->host, error, MUKI_ERR_INVALID_ARGUMENT,
                "score() needs contiguous float32 CPU logits [K, B, C] and scores [B]");
  k = logits->shape[0];
  b = logits->shape[1];
  c = logits->shape[2];
  z = (const float*)((const char*)logits->data + logits->byte_offset);
  scores = (float*)((char*)out->data + out->byte_offset);
  mean = (double*)malloc(sizeof(double) * (size_t)(c > 0 ? c : 1));
  if (mean == NULL) return fail(self->host, error, MUKI_ERR_OUT_OF_MEMORY, "out of memory");
  for (int64_t i = 0; i < b; ++i) {
    double first = 0.0, second = 0.0;
    for (int64_t j = 0; j < c; ++j) mean[j] = 0.0;
    for (int64_t s = 0; s < k; ++s) {
      const float* row = z + (s * b + i) * c;
      double top = row[0], sum = 0.0;
      for (int64_t j = 1; j < c; ++j) top = row[j] > top ? row[j] : top;
      for (int64_t j = 0; j < c; ++j) sum += exp((row[j] - top) / self->temperature);
      for (int64_t j = 0; j < c; ++j)
        mean[j] += exp((row[j] - top) / self->temperature) / sum / (double)k;
    }
    for (int64_t j = 0; j < c; ++j) {
      if (mean[j] > first) {
        second = first;
        first = mean[j];
      } else if (mean[j] > second) {
        second = mean[j];
      }
    }
    scores[i] = c < 2 ? 1.0f : (float)(first - second);
  }
  free(mean);
  return MUKI_OK;
}

static const muki_uncertainty_api kApi = {MUKI_ABI_VERSION, sizeof(muki_uncertainty_api), create,
                                          destroy, describe, score};

static const muki_param_desc kParams[] = {
    {MUKI_ABI_VERSION, sizeof(muki_param_desc), "samples", MUKI_PARAM_INT, 0, "16",
     "stochastic teacher passes (0 = one deterministic pass)", 0.0, 4096.0, 0},
    {MUKI_ABI_VERSION, sizeof(muki_param_desc), "temperature", MUKI_PARAM_FLOAT, 0, "1.0",
     "softmax temperature T > 0", 1e-6, 1e6, 0}};

static const muki_plugin_desc kPlugins[] = {
    {MUKI_ABI_VERSION, sizeof(muki_plugin_desc), MUKI_KIND_UNCERTAINTY, "top2_margin", "1.0.0",
     "certainty = top-2 margin of the averaged distribution (plain C example)", kParams, 2,
     &kApi}};

static const muki_library_desc kLibrary = {
    MUKI_ABI_VERSION, sizeof(muki_library_desc), "muki-example-c-strategy", "1.0.0",
    "an uncertainty strategy in plain C, typed option getters", kPlugins, 1, NULL, NULL};

MUKI_PLUGIN_EXPORT const muki_library_desc* muki_plugin_library_entry(uint32_t host_abi_version) {
  (void)host_abi_version; /* the host checks the handshake and names both versions */
  return &kLibrary;
}
