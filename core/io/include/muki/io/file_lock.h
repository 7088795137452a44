// Claims on work that concurrent muki processes on one machine (or one shared filesystem) could
// otherwise both do: two runs of one config needing the same teacher pass chunk, two runs whose
// [prepare] would train the same missing teacher. The claim is an exclusive flock(2) on a lock
// file, so the kernel drops it when its process exits or is killed: a claim never outlives the
// work it guards, and a crashed process never blocks the others.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>

namespace muki::core {

class FileLock {
 public:
  // Takes the lock on `file` (created, with its folder, when missing) if no other process holds
  // it; std::nullopt when one does. Throws std::runtime_error naming the file when it cannot be
  // created or locked for another reason.
  static std::optional<FileLock> try_lock(const std::filesystem::path& file);
  // Takes the lock on `file`, waiting for as long as another process holds it; `before_waiting`
  // (may be empty) is called once, only when it is held, so a caller can say what it waits for.
  // Throws like try_lock.
  static FileLock lock(const std::filesystem::path& file, const std::function<void()>& before_waiting = {});

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  // Releases the lock. The file stays: removing it could let a third process lock a new file of
  // the same name while a second one waits on the old one.
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace muki::core
