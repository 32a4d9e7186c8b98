# Engine tests (helper C): safetensors reader, model loader, C API, pipelines.
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
