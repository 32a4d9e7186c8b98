# CUDA backend tests (kernels/, docs/CUDA.md).
# test_cuda_emu: the kernels, the backend and the emulation layer's self tests, through the
# CPU emulation build (ngs_cuda_emu), run everywhere. test_cuda_device: the same kernel and
# backend tests against the nvcc-built backend; every test skips (with the reason) when no
# GPU is usable.
set(NGS_CUDA_TEST_SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_kernels.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_api.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_backend.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_latent.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_session.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_encoder.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_synth.cpp)
ngs_add_gtest(test_cuda_emu
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_emu.cpp ${NGS_CUDA_TEST_SOURCES}
  LIBS ngs_cuda_emu ngs_core
  LABELS cuda)
# The whole emulated suite again with the blocks of every grid and the threads of every
# block run in reversed and in shuffled order (kernels/emu: a race between lanes or blocks
# changes the result in some order; the gtest cases above run in index order).
foreach(order reverse shuffle)
  add_test(NAME CudaEmuOrder.${order} COMMAND test_cuda_emu)
  set_tests_properties(CudaEmuOrder.${order} PROPERTIES LABELS cuda
                       ENVIRONMENT "NGS_EMU_ORDER=${order}")
endforeach()
# Every kernel with __launch_bounds__(N) states NGS_KERNEL_BOUNDS(N) first (the emulation
# checks launches against it).
add_test(NAME CudaEmuSubset.LaunchBoundsDeclared
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/check_launch_bounds.sh ${PROJECT_SOURCE_DIR}/kernels/cuda)
set_tests_properties(CudaEmuSubset.LaunchBoundsDeclared PROPERTIES LABELS cuda)
if(NGS_CUDA_ENABLED)
  ngs_add_gtest(test_cuda_device
    PREFIX device.
    SOURCES ${NGS_CUDA_TEST_SOURCES}
    LIBS ngs_cuda_impl ngs_core
    LABELS cuda)
endif()

# The emulation rejects what it does not emulate: each case of test_cuda_unsupported.cpp
# must fail to compile with the diagnostic its "expect-error:" line names, located in its
# own block (expect_compile_error.sh); case 0, the supported subset, must compile.
set(ngs_emu_src ${CMAKE_CURRENT_LIST_DIR}/test_cuda_unsupported.cpp)
set(ngs_emu_syntax ${CMAKE_CXX_COMPILER} -fsyntax-only -std=c++17 -DNGS_CUDA_EMULATION
    -I${PROJECT_SOURCE_DIR}/kernels -I${PROJECT_SOURCE_DIR}/kernels/cuda ${ngs_emu_src})
add_test(NAME CudaEmuSubset.SupportedCompiles COMMAND ${ngs_emu_syntax} -DNGS_EMU_CASE=0)
foreach(case 1 2 3 4 5 6 7)
  add_test(NAME CudaEmuSubset.UnsupportedDoesNotCompile${case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/expect_compile_error.sh ${ngs_emu_src} ${case}
                   ${ngs_emu_syntax} -DNGS_EMU_CASE=${case})
  set_tests_properties(CudaEmuSubset.UnsupportedDoesNotCompile${case} PROPERTIES LABELS cuda)
endforeach()
set_tests_properties(CudaEmuSubset.SupportedCompiles PROPERTIES LABELS cuda)
