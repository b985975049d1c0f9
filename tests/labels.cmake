# Read by ctest after the discovered gtest tests (TEST_INCLUDE_FILES in
# tests/CMakeLists.txt). A list is empty when its binary was not built.
#
# concurrency: unit tests with several threads on one bus, the
#   ThreadSanitizer job of scripts/sanitize.sh.
# alloc: heap counting with a replaced operator new (tests/alloc), so that
#   `ctest -L alloc` runs it alone and a job can leave it out.
if(ipcbus_concurrency_tests)
  set_tests_properties(${ipcbus_concurrency_tests} PROPERTIES LABELS "unit;concurrency")
endif()
if(ipcbus_alloc_tests)
  set_tests_properties(${ipcbus_alloc_tests} PROPERTIES LABELS "unit;alloc")
endif()
