#!/usr/bin/env python3
"""Compiles the code examples of the SDK's documentation, so that they cannot rot:
  - the complete plugin in the comment at the top of sdk/include/muki/plugin.hpp, built as a
    shared library (it must compile AND link: every virtual it declares is defined);
  - every ```cpp and ```c block of README.md, compiled to an object file.
All against the source tree's sdk/include, with warnings as errors.
Usage: compile_doc_examples.py SOURCE_DIR CXX CC"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def header_example(path: Path) -> str:
    """The '//   '-indented block after the line that announces 'A complete plugin'."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "A complete plugin" in line) + 1
    code = []
    for line in lines[start:]:
        if line == "//":
            code.append("")
        elif line.startswith("//   "):
            code.append(line[5:])
        else:
            break
    if not any("MUKI_PLUGIN_LIBRARY" in line for line in code):
        sys.exit(f"{path}: found no example ending in MUKI_PLUGIN_LIBRARY after 'A complete plugin'")
    return "\n".join(code) + "\n"


def readme_blocks(path: Path):
    return re.findall(r"^```(cpp|c)\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def compile_one(name: str, source: str, command: list, work: Path) -> bool:
    file = work / name
    file.write_text(source)
    result = subprocess.run(command + [str(file), "-o", str(file) + ".out"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FAIL {name}:\n{source}\n{result.stderr}")
        return False
    print(f"ok   {name}")
    return True


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source, cxx, cc = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    include = ["-I", str(source / "sdk/include")]
    strict = ["-Wall", "-Wextra", "-Werror"]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ok &= compile_one("plugin_hpp_example.cpp", header_example(source / "sdk/include/muki/plugin.hpp"),
                          [cxx, "-std=c++17", "-shared", "-fPIC", "-Wl,--no-undefined"] + strict + include, work)
        blocks = readme_blocks(source / "README.md")
        if not blocks:
            sys.exit("README.md: no ```cpp or ```c block found")
        for i, (language, code) in enumerate(blocks):
            compiler = [cxx, "-std=c++17"] if language == "cpp" else [cc, "-std=c11"]
            ok &= compile_one(f"readme_{i}.{language}", code, compiler + ["-c"] + strict + include, work)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
