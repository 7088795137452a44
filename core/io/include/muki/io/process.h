// Running another program (the `fasttext` tool that trains fastText teachers, gnuplot for the
// report's figures). Torch-free.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace muki::core {

// Runs `argv` (argv[0] looked up on PATH), with `input` (if not empty) as its standard input,
// stdout written to `log` and stderr to `errors` (empty: to `log` too). Throws
// std::runtime_error when it cannot start (naming the program, with `install_hint` if given) or
// exits with a status other than 0 (with the end of what it wrote).
void run_program(const std::vector<std::string>& argv, const std::filesystem::path& log,
                 const std::filesystem::path& input = {}, const std::string& install_hint = {},
                 const std::filesystem::path& errors = {});

// Whether `program` is an executable file in a folder of $PATH.
bool program_on_path(const std::string& program);

}  // namespace muki::core
