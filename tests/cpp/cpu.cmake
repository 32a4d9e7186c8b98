# CPU backend tests (kernels/cpu).
ngs_add_gtest(test_cpu_ops SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cpu_ops.cpp LIBS ngs_core)
ngs_add_gtest(test_cpu_encoder SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cpu_encoder.cpp LIBS ngs_core)
ngs_add_gtest(test_cpu_stages SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cpu_stages.cpp LIBS ngs_core)
ngs_add_gtest(test_cpu_threads SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cpu_threads.cpp LIBS ngs_core
              LABELS threads)
ngs_add_gtest(test_cpu_fast SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cpu_fast.cpp LIBS ngs_core ngs_cuda_impl)
