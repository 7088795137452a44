/*
 * Pins the memory layout of every struct that each ABI version shipped, on LP64 platforms (Linux
 * x86_64 and aarch64). A change that moves a field breaks the build here instead of breaking
 * plugins at run time. A later minor version may only ADD fields at the end of a struct: add a
 * block that pins where the new fields start (which is the old size) and the new size. A struct
 * that grew has its older size pinned by the offset of its first newer field: that is the size a
 * plugin compiled against the older header writes into struct_size. Included by <muki/plugin.h>.
 */
#ifndef MUKI_PLUGIN_LAYOUT_H
#define MUKI_PLUGIN_LAYOUT_H

#include <stddef.h>

#ifdef __cplusplus
#define MUKI_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MUKI_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define MUKI_PIN_SIZE(T, n) MUKI_STATIC_ASSERT(sizeof(T) == (n), "the size of " #T " changed")
#define MUKI_PIN_OFFSET(T, f, n) \
  MUKI_STATIC_ASSERT(offsetof(T, f) == (n), "the offset of " #T "." #f " changed")

#if defined(__LP64__)
/* ABI 1.0 */
MUKI_STATIC_ASSERT(sizeof(muki_status) == 4, "muki_status must be int-sized");
MUKI_PIN_SIZE(muki_string_view, 16);
MUKI_PIN_OFFSET(muki_host_api, option_has, 32); /* 1.0 size */
MUKI_PIN_OFFSET(muki_host_api, set_error, 24);
MUKI_PIN_OFFSET(muki_param_desc, flags, 56); /* 1.0 size */
MUKI_PIN_OFFSET(muki_param_desc, max_value, 48);
MUKI_PIN_OFFSET(muki_create_args, options, 72); /* 1.0 size */
MUKI_PIN_OFFSET(muki_create_args, seed, 64);
MUKI_PIN_OFFSET(muki_teacher_info, feature_dim, 40); /* 1.0 size */
MUKI_PIN_OFFSET(muki_teacher_info, sampling_note, 24);
MUKI_PIN_SIZE(muki_predict_request, 40);
MUKI_PIN_OFFSET(muki_predict_request, seed, 32);
MUKI_PIN_OFFSET(muki_teacher_api, predict_features, 48); /* 1.0 size */
MUKI_PIN_OFFSET(muki_teacher_api, predict, 40);
MUKI_PIN_OFFSET(muki_uncertainty_info, flags, 12); /* 1.0 size */
MUKI_PIN_OFFSET(muki_uncertainty_api, fit, 40); /* 1.0 size */
MUKI_PIN_OFFSET(muki_uncertainty_api, score, 32);
MUKI_PIN_OFFSET(muki_integration_info, feature_objective, 20); /* 1.0 size */
MUKI_PIN_SIZE(muki_integration_info, 28);
MUKI_PIN_OFFSET(muki_integration_info, flags, 16);
MUKI_PIN_SIZE(muki_teacher_outputs, 40);
MUKI_PIN_OFFSET(muki_teacher_outputs, num_labels, 32);
MUKI_PIN_SIZE(muki_integration_request, 40);
MUKI_PIN_OFFSET(muki_integration_request, gold, 32);
MUKI_PIN_SIZE(muki_integration_api, 40);
MUKI_PIN_OFFSET(muki_integration_api, integrate, 32);
MUKI_PIN_SIZE(muki_plugin_desc, 64);
MUKI_PIN_OFFSET(muki_plugin_desc, api, 56);
MUKI_PIN_SIZE(muki_library_desc, 64);
MUKI_PIN_OFFSET(muki_library_desc, shutdown, 56);
/* DLPack's DLTensor, which every tensor argument is (dlpack 0.x/1.x share this layout). */
MUKI_PIN_SIZE(DLTensor, 48);
MUKI_PIN_OFFSET(DLTensor, shape, 24);
MUKI_PIN_OFFSET(DLTensor, byte_offset, 40);

/* ABI 1.1: fields appended to seven structs, two new structs; every other struct is unchanged. */
MUKI_PIN_SIZE(muki_uncertainty_info, 16);
MUKI_PIN_SIZE(muki_uncertainty_api, 56);
MUKI_PIN_OFFSET(muki_uncertainty_reference, background_features, 56); /* 1.1 size */
MUKI_PIN_OFFSET(muki_uncertainty_reference, labels, 48);
MUKI_PIN_SIZE(muki_score_request, 32);
MUKI_PIN_OFFSET(muki_score_request, features, 24);
MUKI_PIN_SIZE(muki_host_api, 96);
MUKI_PIN_OFFSET(muki_host_api, option_string_array, 72);
MUKI_PIN_OFFSET(muki_host_api, unlock_process_state, 88);
MUKI_PIN_SIZE(muki_param_desc, 64);
MUKI_PIN_SIZE(muki_create_args, 96);
MUKI_PIN_OFFSET(muki_create_args, plugin_name, 80);
MUKI_PIN_SIZE(muki_teacher_info, 48);
MUKI_PIN_SIZE(muki_teacher_api, 56);

/* ABI 1.2: one field appended to muki_uncertainty_reference; every other struct is unchanged. */
MUKI_PIN_SIZE(muki_uncertainty_reference, 64);
#endif

#endif /* MUKI_PLUGIN_LAYOUT_H */
