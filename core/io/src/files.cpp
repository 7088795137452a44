#include "muki/io/files.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace muki::core {
namespace fs = std::filesystem;

namespace {
// write_file_durably, with errors reported under `shown` (the name a user knows, for a temporary).
void write_durably_as(const fs::path& file, std::string_view text, const fs::path& shown) {
  // POSIX calls rather than an ofstream: a stream reports a failed final flush only through a
  // close() nobody checks, and the errno (EFBIG, ENOSPC) is what tells a user why.
  auto fail = [&](const char* what, int fd) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(file.c_str());
    throw std::runtime_error(shown.string() + ": cannot be written (" + what + "): " + std::strerror(error));
  };
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int error = errno;
    throw std::runtime_error(shown.string() + ": cannot be written (open): " + std::strerror(error));
  }
  const char* data = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      fail("write", fd);
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  // Without it a rename can reach the disk before the data, and a power cut leaves an empty file
  // under the real name.
  if (::fsync(fd) != 0) fail("fsync", fd);
  if (::close(fd) != 0) fail("close", -1);
}
}  // namespace

void write_file_durably(const fs::path& file, std::string_view text) { write_durably_as(file, text, file); }

void write_file_atomically(const fs::path& file, std::string_view text) {
  // Per process: two processes writing the same file (a shared cache chunk, the ranks of a job on
  // machines whose pids may coincide) must not share a temporary; the last rename wins with a
  // complete file either way.
  static const std::string host = [] {
    char name[256] = {};
    return ::gethostname(name, sizeof(name) - 1) == 0 ? "-" + std::string(name) : std::string();
  }();
  const fs::path tmp = file.string() + ".tmp" + std::to_string(::getpid()) + host;
  write_durably_as(tmp, text, file);  // on error the temporary is gone: name the real file
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw std::runtime_error(file.string() + ": cannot be written: " + ec.message());
  }
}

}  // namespace muki::core
