#include "muki/registry/registry.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <spdlog/spdlog.h>

// The error slot plugins fill through host->set_error. Lives only for one call.
struct muki_error {
  muki_status status = MUKI_OK;
  std::string message;
  bool set = false;
};

namespace muki::registry {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string str(const char* s) { return s == nullptr ? std::string() : std::string(s); }

void host_log(void*, muki_log_level level, muki_string_view source, muki_string_view message) {
  static const spdlog::level::level_enum levels[] = {spdlog::level::trace, spdlog::level::debug,
                                                     spdlog::level::info, spdlog::level::warn,
                                                     spdlog::level::err};
  const auto lvl = (level >= MUKI_LOG_TRACE && level <= MUKI_LOG_ERROR) ? levels[level]
                                                                        : spdlog::level::info;
  spdlog::log(lvl, "[{}] {}", std::string_view(source.data, source.size),
              std::string_view(message.data, message.size));
}

void host_set_error(muki_error* error, muki_status status, muki_string_view message) {
  if (error == nullptr || error->set) return;
  error->set = true;
  error->status = status;
  error->message.assign(message.data == nullptr ? "" : message.data, message.size);
}

const muki_host_api kHostApi = {MUKI_ABI_VERSION, sizeof(muki_host_api), nullptr, &host_log,
                                &host_set_error};

std::string error_text(muki_status status, const muki_error& error) {
  if (error.set && !error.message.empty()) return error.message;
  return "status " + std::to_string(static_cast<int>(status)) + " without a message";
}

// The smallest struct sizes ABI 1.0 defines; a table smaller than this is malformed.
constexpr uint32_t kMinApiSize[] = {sizeof(muki_teacher_api), sizeof(muki_uncertainty_api),
                                    sizeof(muki_integration_api)};

bool has_shared_library_magic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' &&
         magic[3] == 'F';
}

// Checks one plugin entry's table; returns an empty string when it is usable.
std::string check_plugin_desc(const muki_plugin_desc& d) {
  if (d.struct_size < sizeof(muki_plugin_desc)) return "plugin entry is smaller than ABI 1.0's";
  if (d.name == nullptr || *d.name == '\0') return "a plugin has no name";
  if (d.kind != MUKI_KIND_TEACHER && d.kind != MUKI_KIND_UNCERTAINTY &&
      d.kind != MUKI_KIND_INTEGRATION)
    return std::string("plugin '") + d.name + "' has an unknown kind " +
           std::to_string(static_cast<int>(d.kind));
  if (d.api == nullptr) return std::string("plugin '") + d.name + "' has no function table";
  const auto* head = static_cast<const uint32_t*>(d.api);  // abi_version, struct_size
  if (head[1] < kMinApiSize[d.kind])
    return std::string("plugin '") + d.name + "' has a function table smaller than ABI 1.0's";
  if (d.num_params > 0 && d.params == nullptr)
    return std::string("plugin '") + d.name + "' declares parameters but has no table";
  for (uint64_t i = 0; i < d.num_params; ++i)
  {
    if (d.params[i].name == nullptr || *d.params[i].name == '\0')
      return std::string("plugin '") + d.name + "' has a parameter without a name";
    if (d.params[i].type > MUKI_PARAM_STRING_ARRAY)
      return std::string("plugin '") + d.name + "' parameter '" + d.params[i].name +
             "' has an unknown type " + std::to_string(d.params[i].type);
  }
  bool complete = false;
  switch (d.kind) {
    case MUKI_KIND_TEACHER: {
      const auto* a = static_cast<const muki_teacher_api*>(d.api);
      complete = a->create && a->destroy && a->describe && a->label_name && a->predict;
      break;
    }
    case MUKI_KIND_UNCERTAINTY: {
      const auto* a = static_cast<const muki_uncertainty_api*>(d.api);
      complete = a->create && a->destroy && a->describe && a->score;
      break;
    }
    case MUKI_KIND_INTEGRATION: {
      const auto* a = static_cast<const muki_integration_api*>(d.api);
      complete = a->create && a->destroy && a->describe && a->integrate;
      break;
    }
  }
  if (!complete) return std::string("plugin '") + d.name + "' has a NULL function in its table";
  return {};
}

DLTensor make_tensor(const void* data, DLDataType dtype, int64_t* shape, int32_t ndim) {
  DLTensor t{};
  t.data = const_cast<void*>(data);
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = ndim;
  t.dtype = dtype;
  t.shape = shape;
  t.strides = nullptr;
  t.byte_offset = 0;
  return t;
}
constexpr DLDataType kFloat32{kDLFloat, 32, 1};
constexpr DLDataType kInt64{kDLInt, 64, 1};

muki_create_args make_create_args(const CreateArgs& args, const std::string& config_dir) {
  muki_create_args c{};
  c.abi_version = MUKI_ABI_VERSION;
  c.struct_size = sizeof(muki_create_args);
  c.host = &kHostApi;
  c.instance_name = {args.instance_name.data(), args.instance_name.size()};
  c.options_toml = {args.options_toml.data(), args.options_toml.size()};
  c.config_dir = {config_dir.data(), config_dir.size()};
  c.seed = args.seed;
  return c;
}

}  // namespace

// A loaded shared object and its table. Unloaded (after shutdown) when the last holder goes.
class LoadedLibrary {
 public:
  LoadedLibrary(boost::dll::shared_library lib, const muki_library_desc* desc)
      : lib_(std::move(lib)), desc_(desc) {}
  ~LoadedLibrary() {
    if (desc_ != nullptr && desc_->shutdown != nullptr) desc_->shutdown();
  }
  const muki_library_desc& desc() const { return *desc_; }

 private:
  boost::dll::shared_library lib_;
  const muki_library_desc* desc_;
};

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Teacher: return "teacher";
    case Kind::Uncertainty: return "uncertainty";
    case Kind::Integration: return "integration";
  }
  return "?";
}

const char* kind_noun(Kind kind) {
  switch (kind) {
    case Kind::Teacher: return "teacher adapter";
    case Kind::Uncertainty: return "uncertainty strategy";
    case Kind::Integration: return "integration strategy";
  }
  return "?";
}

const char* param_type_name(muki_param_type type) {
  switch (type) {
    case MUKI_PARAM_BOOL: return "bool";
    case MUKI_PARAM_INT: return "int";
    case MUKI_PARAM_FLOAT: return "float";
    case MUKI_PARAM_STRING: return "string";
    case MUKI_PARAM_PATH: return "path";
    case MUKI_PARAM_STRING_ARRAY: return "string array";
  }
  return "?";
}

std::string format_abi(uint32_t v) {
  return std::to_string(MUKI_VERSION_MAJOR(v)) + "." + std::to_string(MUKI_VERSION_MINOR(v));
}

const muki_host_api* host_api() { return &kHostApi; }

const ParamInfo* PluginInfo::find_param(std::string_view key) const {
  for (const auto& p : params)
    if (p.name == key) return &p;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------------------------

Instance::Instance(std::shared_ptr<const PluginInfo> plugin, std::string instance_name,
                   void* handle, void (*destroy)(void*))
    : handle_(handle), plugin_(std::move(plugin)), instance_name_(std::move(instance_name)),
      destroy_(destroy) {}

Instance::~Instance() {
  if (handle_ != nullptr) destroy_(handle_);
}

void Instance::check(muki_status status, const muki_error& error, const char* what) const {
  if (status == MUKI_OK) return;
  throw PluginError(std::string(kind_noun(plugin_->kind)) + " '" + plugin_->name + "' (" +
                    instance_name_ + "): " + what + " failed: " + error_text(status, error));
}

TeacherInstance::TeacherInstance(std::shared_ptr<const PluginInfo> plugin,
                                 std::string instance_name, void* handle)
    : Instance(plugin, std::move(instance_name), handle,
               static_cast<const muki_teacher_api*>(plugin->desc->api)->destroy),
      api_(static_cast<const muki_teacher_api*>(plugin->desc->api)) {
  muki_teacher_info info{};
  info.abi_version = MUKI_ABI_VERSION;
  info.struct_size = sizeof(info);
  muki_error error;
  check(api_->describe(handle_, &info, &error), error, "describe");
  if (info.num_labels == 0) check(MUKI_ERR_INTERNAL, muki_error{}, "describe (0 labels)");
  can_sample_ = (info.flags & MUKI_TEACHER_CAN_SAMPLE) != 0;
  sampling_note_.assign(info.sampling_note.data == nullptr ? "" : info.sampling_note.data,
                        info.sampling_note.size);
  for (uint64_t i = 0; i < info.num_labels; ++i) {
    muki_string_view name{};
    muki_error e;
    check(api_->label_name(handle_, i, &name, &e), e, "label_name");
    labels_.emplace_back(name.data == nullptr ? "" : name.data, name.size);
  }
}

void TeacherInstance::predict(const std::vector<std::string>& texts, uint32_t samples,
                              uint64_t seed, float* out) const {
  std::vector<muki_string_view> views;
  views.reserve(texts.size());
  for (const auto& t : texts) views.push_back({t.data(), t.size()});
  muki_predict_request req{};
  req.abi_version = MUKI_ABI_VERSION;
  req.struct_size = sizeof(req);
  req.texts = views.data();
  req.num_texts = views.size();
  req.samples = samples;
  req.seed = seed;
  int64_t shape3[3] = {samples, static_cast<int64_t>(texts.size()),
                       static_cast<int64_t>(labels_.size())};
  DLTensor t = samples == 0 ? make_tensor(out, kFloat32, shape3 + 1, 2)
                            : make_tensor(out, kFloat32, shape3, 3);
  muki_error error;
  check(api_->predict(handle_, &req, &t, &error), error, "predict");
}

UncertaintyInstance::UncertaintyInstance(std::shared_ptr<const PluginInfo> plugin,
                                         std::string instance_name, void* handle)
    : Instance(plugin, std::move(instance_name), handle,
               static_cast<const muki_uncertainty_api*>(plugin->desc->api)->destroy),
      api_(static_cast<const muki_uncertainty_api*>(plugin->desc->api)) {
  muki_uncertainty_info info{};
  info.abi_version = MUKI_ABI_VERSION;
  info.struct_size = sizeof(info);
  muki_error error;
  check(api_->describe(handle_, &info, &error), error, "describe");
  samples_ = info.samples;
}

void UncertaintyInstance::score(const float* logits, int64_t k, int64_t b, int64_t c,
                                float* out) const {
  int64_t in_shape[3] = {k, b, c};
  int64_t out_shape[1] = {b};
  DLTensor in = make_tensor(logits, kFloat32, in_shape, 3);
  DLTensor o = make_tensor(out, kFloat32, out_shape, 1);
  muki_error error;
  check(api_->score(handle_, &in, &o, &error), error, "score");
}

IntegrationInstance::IntegrationInstance(std::shared_ptr<const PluginInfo> plugin,
                                         std::string instance_name, void* handle)
    : Instance(plugin, std::move(instance_name), handle,
               static_cast<const muki_integration_api*>(plugin->desc->api)->destroy),
      api_(static_cast<const muki_integration_api*>(plugin->desc->api)) {
  info_.abi_version = MUKI_ABI_VERSION;
  info_.struct_size = sizeof(info_);
  muki_error error;
  check(api_->describe(handle_, &info_, &error), error, "describe");
  if (info_.loss > MUKI_LOSS_KL_PER_TEACHER)
    check(MUKI_ERR_INTERNAL, muki_error{}, "describe (unknown loss kind)");
  if (!(info_.student_temperature > 0.0f))
    check(MUKI_ERR_INTERNAL, muki_error{}, "describe (student temperature must be > 0)");
}

void IntegrationInstance::integrate(const std::vector<TeacherOutputsView>& teachers,
                                    int64_t batch_size, int64_t union_size, const int64_t* gold,
                                    float* target, float* weight) const {
  const size_t n = teachers.size();
  std::vector<int64_t> shapes(3 * n);
  std::vector<DLTensor> tensors(2 * n);
  std::vector<muki_teacher_outputs> outs(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& t = teachers[i];
    int64_t* s = &shapes[3 * i];
    s[0] = batch_size;
    s[1] = static_cast<int64_t>(t.label_map->size());
    s[2] = batch_size;
    tensors[2 * i] = make_tensor(t.logits, kFloat32, s, 2);
    tensors[2 * i + 1] = make_tensor(t.scores, kFloat32, s + 2, 1);
    outs[i] = muki_teacher_outputs{MUKI_ABI_VERSION, sizeof(muki_teacher_outputs),
                                   &tensors[2 * i], &tensors[2 * i + 1], t.label_map->data(),
                                   t.label_map->size()};
  }
  int64_t gold_shape[1] = {batch_size};
  DLTensor gold_t = make_tensor(gold, kInt64, gold_shape, 1);
  muki_integration_request req{};
  req.abi_version = MUKI_ABI_VERSION;
  req.struct_size = sizeof(req);
  req.teachers = outs.data();
  req.num_teachers = n;
  req.union_size = static_cast<uint64_t>(union_size);
  req.gold = gold != nullptr ? &gold_t : nullptr;
  int64_t target_shape[2] = {batch_size, union_size};
  int64_t weight_shape[1] = {batch_size};
  DLTensor tt = make_tensor(target, kFloat32, target_shape, 2);
  DLTensor wt = make_tensor(weight, kFloat32, weight_shape, 1);
  muki_error error;
  check(api_->integrate(handle_, &req, &tt, &wt, &error), error, "integrate");
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

Registry::Registry() = default;
Registry::~Registry() = default;

void Registry::load_library(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw PluginError(path.string() + ": no such file");
  if (!fs::is_regular_file(path, ec)) throw PluginError(path.string() + ": not a regular file");
  const fs::path canonical = fs::canonical(path, ec);
  if (std::find(loaded_paths_.begin(), loaded_paths_.end(), canonical) != loaded_paths_.end())
    return;
  if (!has_shared_library_magic(path))
    throw PluginError(path.string() + ": not a shared library (no ELF header)");

  boost::dll::shared_library lib;
  boost::dll::fs::error_code dll_ec;
  lib.load(boost::dll::fs::path(canonical.string()),
           boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, dll_ec);
  if (dll_ec) {
    throw PluginError(path.string() + ": cannot be loaded as a shared library: " +
                      dll_ec.message());
  }
  if (!lib.has(MUKI_PLUGIN_ENTRY_SYMBOL))
    throw PluginError(path.string() + ": not a muki plugin (no '" MUKI_PLUGIN_ENTRY_SYMBOL
                                      "' symbol)");
  auto& entry = lib.get<const muki_library_desc*(uint32_t)>(MUKI_PLUGIN_ENTRY_SYMBOL);
  const muki_library_desc* desc = entry(MUKI_ABI_VERSION);
  if (desc == nullptr)
    throw PluginError(path.string() + ": the library refused host ABI " +
                      format_abi(MUKI_ABI_VERSION));
  const uint32_t abi = desc->abi_version;
  if (MUKI_VERSION_MAJOR(abi) != MUKI_ABI_MAJOR || MUKI_VERSION_MINOR(abi) > MUKI_ABI_MINOR) {
    throw PluginError(path.string() + ": plugin ABI " + format_abi(abi) +
                      " is incompatible with host ABI " + format_abi(MUKI_ABI_VERSION) +
                      " (the major versions must match and the plugin's minor must not exceed "
                      "the host's)");
  }
  if (desc->struct_size < sizeof(muki_library_desc))
    throw PluginError(path.string() + ": library table is smaller than ABI 1.0's");
  if (desc->num_plugins > 0 && desc->plugins == nullptr)
    throw PluginError(path.string() + ": library declares plugins but has no table");

  // Check every entry and every name before anything is registered: all or nothing.
  for (uint64_t i = 0; i < desc->num_plugins; ++i) {
    const std::string problem = check_plugin_desc(desc->plugins[i]);
    if (!problem.empty()) throw PluginError(path.string() + ": " + problem);
  }
  for (uint64_t i = 0; i < desc->num_plugins; ++i) {
    const auto& d = desc->plugins[i];
    const Kind kind = static_cast<Kind>(d.kind);
    if (auto existing = lookup(kind, d.name)) {
      throw PluginError(path.string() + ": " + kind_noun(kind) + " '" + d.name +
                        "' is already provided by " + existing->library_path.string());
    }
    for (uint64_t j = 0; j < i; ++j)
      if (desc->plugins[j].kind == d.kind && lower(desc->plugins[j].name) == lower(d.name))
        throw PluginError(path.string() + ": " + kind_noun(kind) + " '" + d.name +
                          "' appears twice in the library");
  }

  if (desc->init != nullptr) {
    muki_error error;
    const muki_status status = desc->init(&kHostApi, &error);
    if (status != MUKI_OK)
      throw PluginError(path.string() + ": init failed: " + error_text(status, error));
  }

  auto loaded = std::make_shared<LoadedLibrary>(std::move(lib), desc);
  for (uint64_t i = 0; i < desc->num_plugins; ++i) {
    const auto& d = desc->plugins[i];
    auto info = std::make_shared<PluginInfo>();
    info->kind = static_cast<Kind>(d.kind);
    info->name = d.name;
    info->version = str(d.version);
    info->description = str(d.description);
    for (uint64_t p = 0; p < d.num_params; ++p) {
      const auto& pd = d.params[p];
      ParamInfo param;
      param.name = pd.name;
      param.type = static_cast<muki_param_type>(pd.type);
      param.required = pd.required != 0;
      if (pd.default_value != nullptr) param.default_value = pd.default_value;
      param.doc = str(pd.doc);
      if (pd.min_value <= pd.max_value) {
        param.min_value = pd.min_value;
        param.max_value = pd.max_value;
      }
      info->params.push_back(std::move(param));
    }
    info->library_path = canonical;
    info->library_name = str(desc->name);
    info->library_version = str(desc->version);
    info->abi_version = abi;
    info->library = loaded;
    info->desc = &d;
    plugins_[{info->kind, lower(info->name)}] = std::move(info);
  }
  loaded_paths_.push_back(canonical);
  spdlog::debug("loaded {} ({} plugins, ABI {})", canonical.string(), desc->num_plugins,
                format_abi(abi));
}

std::vector<LoadFailure> Registry::scan(const std::vector<fs::path>& folders) {
  std::vector<LoadFailure> failures;
  for (const auto& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) {
      failures.push_back({folder, folder.string() + ": not a folder"});
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.rfind("lib", 0) == 0 && entry.path().extension() == ".so")
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      try {
        load_library(file);
      } catch (const PluginError& e) {
        failures.push_back({file, e.what()});
      }
    }
  }
  return failures;
}

std::shared_ptr<const PluginInfo> Registry::lookup(Kind kind, std::string_view name) const {
  auto it = plugins_.find({kind, lower(name)});
  return it == plugins_.end() ? nullptr : it->second;
}

const PluginInfo* Registry::find(Kind kind, std::string_view name) const {
  return lookup(kind, name).get();
}

std::vector<std::string> Registry::names(Kind kind) const {
  std::vector<std::string> out;
  for (const auto& [key, info] : plugins_)
    if (key.first == kind) out.push_back(info->name);
  return out;
}

const PluginInfo& Registry::get(Kind kind, std::string_view name) const {
  if (const PluginInfo* p = find(kind, name)) return *p;
  std::string available;
  for (const auto& n : names(kind)) available += (available.empty() ? "" : ", ") + n;
  throw PluginError(std::string(kind_noun(kind)) + " '" + std::string(name) + "' not found; " +
                    (available.empty() ? "no plugin of that kind is loaded"
                                       : "available: " + available));
}

std::vector<const PluginInfo*> Registry::list() const {
  std::vector<const PluginInfo*> out;
  for (const auto& [key, info] : plugins_) out.push_back(info.get());
  return out;
}

namespace {
template <class Api>
void* create_handle(const std::shared_ptr<const PluginInfo>& info, const CreateArgs& args) {
  const auto* api = static_cast<const Api*>(info->desc->api);
  const std::string dir = args.config_dir.string();
  const muki_create_args c = make_create_args(args, dir);
  void* handle = nullptr;
  muki_error error;
  const muki_status status = api->create(&c, &handle, &error);
  if (status != MUKI_OK)
    throw PluginError(std::string(kind_noun(info->kind)) + " '" + info->name + "' (" +
                      args.instance_name + "): create failed: " + error_text(status, error));
  if (handle == nullptr)
    throw PluginError(std::string(kind_noun(info->kind)) + " '" + info->name +
                      "': create returned no instance");
  return handle;
}
}  // namespace

std::unique_ptr<TeacherInstance> Registry::create_teacher(std::string_view plugin,
                                                          const CreateArgs& args) const {
  get(Kind::Teacher, plugin);
  auto info = lookup(Kind::Teacher, plugin);
  void* handle = create_handle<muki_teacher_api>(info, args);
  return std::unique_ptr<TeacherInstance>(new TeacherInstance(info, args.instance_name, handle));
}

std::unique_ptr<UncertaintyInstance> Registry::create_uncertainty(std::string_view plugin,
                                                                  const CreateArgs& args) const {
  get(Kind::Uncertainty, plugin);
  auto info = lookup(Kind::Uncertainty, plugin);
  void* handle = create_handle<muki_uncertainty_api>(info, args);
  return std::unique_ptr<UncertaintyInstance>(
      new UncertaintyInstance(info, args.instance_name, handle));
}

std::unique_ptr<IntegrationInstance> Registry::create_integration(std::string_view plugin,
                                                                  const CreateArgs& args) const {
  get(Kind::Integration, plugin);
  auto info = lookup(Kind::Integration, plugin);
  void* handle = create_handle<muki_integration_api>(info, args);
  return std::unique_ptr<IntegrationInstance>(
      new IntegrationInstance(info, args.instance_name, handle));
}

std::vector<fs::path> default_plugin_folders() {
  std::vector<fs::path> out;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    if (p.empty() || !fs::is_directory(p, ec)) return;
    const fs::path c = fs::canonical(p, ec);
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  };
  if (const char* env = std::getenv("MUKI_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':')) add(item);
  }
  boost::dll::fs::error_code ec;
  const fs::path exe_dir = fs::path(boost::dll::program_location(ec).string()).parent_path();
  if (!ec) {
    add(exe_dir.parent_path() / MUKI_PLUGIN_RELATIVE_DIR);
  }
  return out;
}

}  // namespace muki::registry
