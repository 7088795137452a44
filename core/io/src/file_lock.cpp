#include "muki/io/file_lock.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace muki::core {
namespace fs = std::filesystem;

namespace {

// The lock file opened, or an error naming it; `how` is LOCK_EX with or without LOCK_NB. Returns
// -1 when LOCK_NB was asked and another process holds the lock.
int open_and_lock(const fs::path& file, int how) {
  std::error_code ec;
  if (file.has_parent_path()) fs::create_directories(file.parent_path(), ec);
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(file.string() + ": cannot open the lock file: " + std::strerror(errno));
  while (::flock(fd, how) != 0) {
    const int error = errno;
    if (error == EINTR) continue;
    ::close(fd);
    if (error == EWOULDBLOCK) return -1;
    throw std::runtime_error(file.string() + ": cannot lock: " + std::strerror(error));
  }
  return fd;
}

}  // namespace

std::optional<FileLock> FileLock::try_lock(const fs::path& file) {
  const int fd = open_and_lock(file, LOCK_EX | LOCK_NB);
  if (fd < 0) return std::nullopt;
  return FileLock(fd);
}

FileLock FileLock::lock(const fs::path& file, const std::function<void()>& before_waiting) {
  if (std::optional<FileLock> free = try_lock(file)) return std::move(*free);
  if (before_waiting) before_waiting();
  return FileLock(open_and_lock(file, LOCK_EX));
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the only descriptor releases the flock
}

}  // namespace muki::core
