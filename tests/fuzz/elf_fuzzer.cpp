// The ELF header check load_library runs before dlopen (muki::registry::elf_problem): the input
// is the whole file. Whatever the bytes, the answer is a sentence or "", never a crash or a read
// outside the file.
#include <cstdint>
#include <string_view>

#include <muki/registry/registry.h>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const muki::fuzz::MemoryFile file("plugin.so");
  file.assign(std::string_view(reinterpret_cast<const char*>(data), size));
  (void)muki::registry::elf_problem(file.path());
  return 0;
}
