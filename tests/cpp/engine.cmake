# Engine tests: safetensors reader, model loader, C API, pipelines.
ngs_add_gtest(test_api_loader
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_api_loader.cpp
  LIBS ngs_core ngs_cuda_impl)
ngs_add_gtest(test_pipeline_golden
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pipeline_golden.cpp
  LIBS ngs_core ngs_cuda_impl)
ngs_add_gtest(test_api_errors
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_api_errors.cpp
  LIBS ngs_core ngs_cuda_impl)
ngs_add_gtest(test_pipeline_threads
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pipeline_threads.cpp
  LIBS ngs_core ngs_cuda_impl
  LABELS threads)
ngs_add_gtest(test_api_alloc
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_api_alloc.cpp
  LIBS ngs_core ngs_cuda_impl)

# The installed-library test (tests/install/run.sh): cmake --install into the build tree,
# a C program compiled with pkg-config (shared and static) and a find_package(ngs)
# consumer, all run on a fixture model. Not in sanitizer builds (plain cc cannot link
# sanitized libraries).
if(NOT NGS_SANITIZE)
  add_test(NAME install_pkgconfig_find_package
    COMMAND bash ${PROJECT_SOURCE_DIR}/tests/install/run.sh ${PROJECT_BINARY_DIR}
            ${NGS_FIXTURES_DIR}/lstm22k/model.safetensors)
  set_tests_properties(install_pkgconfig_find_package PROPERTIES LABELS install TIMEOUT 300)
endif()
# The shared library exports exactly the C API (ngs_*), with a SONAME.
add_test(NAME shared_library_exports_only_c_api
  COMMAND bash ${PROJECT_SOURCE_DIR}/tests/install/check_exports.sh $<TARGET_FILE:ngs>
          ${PROJECT_SOURCE_DIR}/engine/include/ngs/ngs.h)
set_tests_properties(shared_library_exports_only_c_api PROPERTIES LABELS install)
ngs_add_gtest(test_pipeline_lengths
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_pipeline_lengths.cpp
  LIBS ngs_core ngs_cuda_impl)
