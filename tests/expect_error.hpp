// error_of<E>(f): the message of the E that f throws; fails the test if f throws none.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace hubel::test {

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected exception not thrown";
  return "";
}

}  // namespace hubel::test
