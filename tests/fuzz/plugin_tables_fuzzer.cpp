// The registry's checks of a plugin library's descriptor tables (registry/src/registry.cpp), fed
// in-process through Registry::register_library: what load_library does with the table a
// library's entry point returns, without dlopen.
//
// The tables are built from the input, honestly: every pointer is null or points at a real
// buffer, every string is NUL-terminated, every function pointer is null or a real function, and
// arrays are laid out as the ABI says a plugin lays them out (strided by the first element's
// struct_size, in buffers of exactly that size, so that AddressSanitizer sees any read past what
// the plugin wrote). Everything else (versions, sizes, kinds, types, counts, flags, bounds, names)
// is the input's, including elements of one array whose struct_size differs from the first's.
//
// Input, read front to back (past the end every byte reads 0):
//   u8 flags: bit 0 host claims ABI 1.0, bit 1 the entry point returns NULL, bits 2-3 init
//      (none, succeeds, fails with a message, fails without one), bit 4 a shutdown hook
//   library: version, size, string name, string version, string description, u8 plugins
//      (bits 0-2 count, bit 6 count = u64 instead, bit 7 no table), size of the plugin entries,
//      then each entry
//   entry: u8 (bit 0: its own struct_size follows as u8, else it is the array's; ignored for the
//      first entry, whose struct_size is the stride), u8 kind (0-2, 3 = u32),
//      string name, string version, string description, u8 params (bits 0-2 count, bit 7 no
//      table), size of the parameter entries, each parameter, u8 function table (bits 0-1:
//      0 none, else one; bits 2-7: which functions are non-null), size of the table
//   parameter: u8 (as the entry's), string name, u8 type (0-5, 6-7 = u32), u8 required, string
//      default, string doc, f64 min, f64 max, u8 flags
//   version: u8 % 4: 1.1, 1.0, 1.2, u32
//   size: u8 % 4: this header's sizeof, ABI 1.0's size, sizeof + 8 * (1-4), u8
//   string: u8 n: 0 = NULL, else n - 1 bytes
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include <muki/plugin.h>
#include <muki/registry/registry.h>

#include "fuzz_support.h"

namespace {

using muki::fuzz::ByteReader;
using muki::registry::PluginError;
using muki::registry::Registry;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

// ---- the functions a table may point to; the registry only checks that they are there ----

uint8_t g_init = 0;
int g_shutdowns = 0;

muki_status init(const muki_host_api* host, muki_error* error) {
  if (g_init == 1) return MUKI_OK;
  if (g_init == 2) host->set_error(error, MUKI_ERR_CONFIG, {"init refused", 12});
  return MUKI_ERR_CONFIG;
}
void shutdown() { ++g_shutdowns; }

muki_status create(const muki_create_args*, void**, muki_error*) { return MUKI_ERR_UNSUPPORTED; }
void destroy(void*) {}
muki_status describe_teacher(void*, muki_teacher_info*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status label_name(void*, uint64_t, muki_string_view*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status predict(void*, const muki_predict_request*, DLTensor*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status predict_features(void*, const muki_predict_request*, DLTensor*, DLTensor*, muki_error*) {
  return MUKI_ERR_INTERNAL;
}
muki_status describe_uncertainty(void*, muki_uncertainty_info*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status score(void*, const DLTensor*, DLTensor*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status fit(void*, const muki_uncertainty_reference*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status score_teacher(void*, const muki_score_request*, DLTensor*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status describe_integration(void*, muki_integration_info*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status integrate(void*, const muki_integration_request*, DLTensor*, DLTensor*, muki_error*) {
  return MUKI_ERR_INTERNAL;
}

// Owns every buffer and string of one input's tables; each buffer exactly as large as declared.
class Arena {
 public:
  unsigned char* buffer(size_t size) {
    buffers_.push_back(std::make_unique<unsigned char[]>(size));
    return buffers_.back().get();
  }
  const char* string(ByteReader& in) {
    const uint8_t n = in.u8();
    if (n == 0) return nullptr;
    std::string s;
    for (uint8_t i = 1; i < n; ++i) s.push_back(static_cast<char>(in.u8()));
    strings_.push_back(std::move(s));
    return strings_.back().c_str();
  }

 private:
  std::vector<std::unique_ptr<unsigned char[]>> buffers_;
  std::deque<std::string> strings_;
};

uint32_t version(ByteReader& in) {
  switch (in.u8() % 4) {
    case 0: return MUKI_ABI_VERSION;
    case 1: return MUKI_MAKE_VERSION(1, 0);
    case 2: return MUKI_MAKE_VERSION(1, 2);
    default: return in.u32();
  }
}

uint32_t struct_size(ByteReader& in, uint32_t native, uint32_t v10) {
  const uint8_t b = in.u8();
  switch (b % 4) {
    case 0: return native;
    case 1: return v10;
    case 2: return native + 8 * (1 + ((b >> 2) & 3));
    default: return in.u8();
  }
}

// Lays out `count` elements strided by `stride` (every struct has at least its 8-byte header, so
// the buffer holds that much of the last one). Elements closer than their header cannot be laid
// out at all: then only the first is written.
template <class T, class Make>
const T* array(Arena& arena, ByteReader& in, uint64_t count, uint32_t stride, Make make) {
  const size_t step = stride, span = std::max<size_t>(stride, 8);
  unsigned char* base = arena.buffer((count - 1) * step + span);
  const uint64_t written = stride < 8 ? 1 : count;
  for (uint64_t i = 0; i < written; ++i) {
    const uint32_t own = (in.u8() & 1) != 0 ? in.u8() : stride;
    T element = make();
    element.struct_size = i == 0 ? stride : own;
    std::memcpy(base + i * step, &element, std::min(span, sizeof(T)));
  }
  return reinterpret_cast<const T*>(base);
}

// A function table of `kind`'s layout (the teacher's for an unknown kind), `mask` choosing the
// functions that are present.
const void* function_table(Arena& arena, ByteReader& in, uint32_t kind) {
  const uint8_t choice = in.u8();
  if ((choice & 3) == 0) return nullptr;
  const auto on = [mask = choice >> 2](int bit, auto fn) { return (mask >> bit) & 1 ? fn : nullptr; };
  const auto place = [&](auto table, uint32_t v10) {
    table.abi_version = MUKI_ABI_VERSION;
    table.struct_size = struct_size(in, sizeof(table), v10);
    const size_t size = std::max<size_t>(table.struct_size, 8);
    unsigned char* buffer = arena.buffer(size);
    std::memcpy(buffer, &table, std::min(size, sizeof(table)));
    return static_cast<const void*>(buffer);
  };
  if (kind == MUKI_KIND_UNCERTAINTY)
    return place(muki_uncertainty_api{0, 0, on(0, create), on(1, destroy), on(2, describe_uncertainty),
                                      on(3, score), on(4, fit), on(5, score_teacher)},
                 offsetof(muki_uncertainty_api, fit));
  if (kind == MUKI_KIND_INTEGRATION)
    return place(muki_integration_api{0, 0, on(0, create), on(1, destroy), on(2, describe_integration),
                                      on(3, integrate)},
                 sizeof(muki_integration_api));
  return place(muki_teacher_api{0, 0, on(0, create), on(1, destroy), on(2, describe_teacher),
                                on(3, label_name), on(4, predict), on(5, predict_features)},
               offsetof(muki_teacher_api, predict_features));
}

muki_param_desc param(Arena& arena, ByteReader& in) {
  muki_param_desc p{};
  p.abi_version = MUKI_ABI_VERSION;
  p.name = arena.string(in);
  const uint8_t type = in.u8() % 8;
  p.type = type < 6 ? type : in.u32();
  p.required = in.u8();
  p.default_value = arena.string(in);
  p.doc = arena.string(in);
  p.min_value = in.f64();
  p.max_value = in.f64();
  p.flags = in.u8();
  return p;
}

muki_plugin_desc plugin(Arena& arena, ByteReader& in) {
  muki_plugin_desc d{};
  d.abi_version = MUKI_ABI_VERSION;
  const uint8_t kind = in.u8() % 4;
  d.kind = kind < 3 ? kind : in.u32();
  d.name = arena.string(in);
  d.version = arena.string(in);
  d.description = arena.string(in);
  const uint8_t params = in.u8();
  d.num_params = params & 7;
  const uint32_t stride = struct_size(in, sizeof(muki_param_desc), offsetof(muki_param_desc, flags));
  if ((params & 128) == 0 && d.num_params > 0)
    d.params = array<muki_param_desc>(arena, in, d.num_params, stride, [&] { return param(arena, in); });
  d.api = function_table(arena, in, d.kind);
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  Arena arena;
  const uint8_t flags = in.u8();
  g_init = (flags >> 2) & 3;
  g_shutdowns = 0;

  muki_library_desc lib{};
  lib.abi_version = version(in);
  lib.struct_size = struct_size(in, sizeof(muki_library_desc), sizeof(muki_library_desc));
  lib.name = arena.string(in);
  lib.version = arena.string(in);
  lib.description = arena.string(in);
  const uint8_t plugins = in.u8();
  lib.num_plugins = (plugins & 64) != 0 ? in.u64() : plugins & 7;
  const uint32_t stride = struct_size(in, sizeof(muki_plugin_desc), sizeof(muki_plugin_desc));
  if ((plugins & 128) == 0 && (plugins & 64) == 0 && lib.num_plugins > 0)
    lib.plugins = array<muki_plugin_desc>(arena, in, lib.num_plugins, stride, [&] { return plugin(arena, in); });
  lib.init = g_init != 0 ? init : nullptr;
  lib.shutdown = (flags & 16) != 0 ? shutdown : nullptr;

  const size_t lib_size = std::max<size_t>(lib.struct_size, 8);
  unsigned char* table = arena.buffer(lib_size);
  std::memcpy(table, &lib, std::min(lib_size, sizeof(lib)));
  const auto* desc = (flags & 2) != 0 ? nullptr : reinterpret_cast<const muki_library_desc*>(table);

  int registrations = 0;  // that got past init
  {
    Registry registry((flags & 1) != 0 ? MUKI_MAKE_VERSION(1, 0) : MUKI_ABI_VERSION);
    try {
      registry.register_library(desc, "fuzz.so");
      ++registrations;
    } catch (const PluginError& e) {
      require(std::strncmp(e.what(), "fuzz.so: ", 9) == 0);
    }
    if (registrations == 1) {
      const auto listed = registry.list();
      require(listed.size() == lib.num_plugins);
      for (const auto* p : listed) {
        require(&registry.get(p->kind, p->name) == p);
        for (const auto& param : p->params) require(p->find_param(param.name) != nullptr);
      }
      try {
        registry.register_library(desc, "again.so");
        ++registrations;
        require(lib.num_plugins == 0);
      } catch (const PluginError& e) {
        require(std::strncmp(e.what(), "again.so: ", 10) == 0 && lib.num_plugins > 0);
      }
    }
  }
  // The shutdown hook runs once per registration that got past init, and only then.
  require(g_shutdowns == (lib.shutdown != nullptr ? registrations : 0));
  return 0;
}
