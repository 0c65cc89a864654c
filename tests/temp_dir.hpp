// A fresh directory for a test, removed with everything in it at the end: named after the
// running test, the process and a counter (two in one test are two directories).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "framework/error.hpp"

namespace hubel::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int counter = 0;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = std::filesystem::temp_directory_path() /
           cat("hubel-test-", info ? info->name() : "none", "-", ::getpid(), "-", counter++);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  // Files in the directory (to check that nothing half-written was left).
  std::set<std::string> files() const {
    std::set<std::string> s;
    for (const auto& e : std::filesystem::directory_iterator(path)) s.insert(e.path().filename().string());
    return s;
  }
};

}  // namespace hubel::test
