// FileLock: the claims concurrent muki processes divide shared work with (file_lock.h).
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include <sys/wait.h>
#include <unistd.h>

#include <muki/io/file_lock.h>

#include "../test_support.h"

using muki::core::FileLock;
using muki::test::TempDir;

// flock(2) locks belong to an open file, so two claims in one process exclude each other as two
// processes' do.
TEST(FileLock, OneHolderAtATimeUntilReleased) {
  TempDir dir;
  const auto file = dir.path() / "sub" / "chunk-0.lock";  // the folder is made
  std::optional<FileLock> first = FileLock::try_lock(file);
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(FileLock::try_lock(file).has_value());
  EXPECT_TRUE(FileLock::try_lock(dir.path() / "sub" / "chunk-256.lock").has_value());  // another chunk
  FileLock moved = std::move(*first);  // the claim moves, it is not released
  first.reset();
  EXPECT_FALSE(FileLock::try_lock(file).has_value());
  { FileLock gone = std::move(moved); }
  EXPECT_TRUE(FileLock::try_lock(file).has_value());
  EXPECT_TRUE(std::filesystem::exists(file));  // left in place (see ~FileLock)
}

// A process killed while it holds a claim does not leave it held: the kernel drops it.
TEST(FileLock, AKilledHolderReleasesItsClaim) {
  TempDir dir;
  const auto file = dir.path() / "teacher.lock";
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const FileLock held = FileLock::lock(file);
    const char c = 'x';
    if (write(ready[1], &c, 1) != 1) _exit(1);
    pause();  // until killed
    _exit(0);
  }
  char c = 0;
  const bool ready_read = read(ready[0], &c, 1) == 1;  // not ASSERT: the child must be killed below
  EXPECT_TRUE(ready_read);
  if (ready_read) {
    EXPECT_FALSE(FileLock::try_lock(file).has_value());
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(FileLock::try_lock(file).has_value());
  close(ready[0]);
  close(ready[1]);
}

TEST(FileLock, AnUnusableFileIsNamed) {
  TempDir dir;
  const auto blocker = dir.write("plain", "a file, not a folder");
  try {
    FileLock::try_lock(blocker / "x.lock");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((blocker / "x.lock").string() + ": cannot open the lock file"), std::string::npos)
        << e.what();
  }
}
