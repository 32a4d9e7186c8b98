# CUDA backend tests (kernels/, docs/CUDA.md).
# test_cuda_emu: the kernels, the backend and the emulation layer's self tests, through the
# CPU emulation build (ngs_cuda_emu), run everywhere. test_cuda_device: the same kernel and
# backend tests against the nvcc-built backend; every test skips (with the reason) when no
# GPU is usable.
set(NGS_CUDA_TEST_SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_kernels.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_api.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_backend.cpp)
ngs_add_gtest(test_cuda_emu
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_emu.cpp ${NGS_CUDA_TEST_SOURCES}
  LIBS ngs_cuda_emu ngs_core
  LABELS cuda)
if(NGS_CUDA_ENABLED)
  ngs_add_gtest(test_cuda_device
    SOURCES ${NGS_CUDA_TEST_SOURCES}
    LIBS ngs_cuda_impl ngs_core
    LABELS cuda)
endif()
