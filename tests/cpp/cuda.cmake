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
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_synth.cpp
                          ${CMAKE_CURRENT_LIST_DIR}/test_cuda_engine_size.cpp)
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
  # Build-time resource check (docs/CUDA.md, "Resources"): the PTX and the ptxas -v report
  # of every kernel source for each real architecture built (target ngs_cuda_resources);
  # check_cuda_resources.py fails a kernel whose registers x __launch_bounds__ threads
  # exceed 64 K per SM or that spills. Its self test: a kernel that spills must fail it.
  set(ngs_res_dir ${CMAKE_BINARY_DIR}/cuda_resources)
  set(ngs_res_outputs)
  file(GLOB ngs_res_headers ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cuh ${PROJECT_SOURCE_DIR}/kernels/cuda/*.h)
  file(GLOB ngs_res_sources ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cu)
  set(ngs_res_script ${CMAKE_CURRENT_LIST_DIR}/cuda_resources.sh)
  foreach(arch ${NGS_CUDA_ARCHITECTURES})
    if(NOT arch MATCHES "^([0-9]+)(-real)?$")
      continue()  # e.g. 90-virtual: PTX only, no SASS whose resources could be checked
    endif()
    set(sm ${CMAKE_MATCH_1})
    foreach(src ${ngs_res_sources})
      file(STRINGS ${src} ngs_has_kernel REGEX "__global__")
      if(NOT ngs_has_kernel)
        continue()
      endif()
      get_filename_component(stem ${src} NAME_WE)
      set(out ${ngs_res_dir}/${stem}_sm${sm})
      add_custom_command(OUTPUT ${out}.log
        COMMAND bash ${ngs_res_script} ${CMAKE_CUDA_COMPILER} ${sm} ${out} ${src} -DNDEBUG
                -I${PROJECT_SOURCE_DIR}/kernels -I${PROJECT_SOURCE_DIR}/kernels/cuda
        DEPENDS ${src} ${ngs_res_headers} ${ngs_res_script}
        COMMENT "ptxas resource report of ${stem}.cu for sm_${sm}" VERBATIM)
      list(APPEND ngs_res_outputs ${out}.log)
    endforeach()
  endforeach()
  set(ngs_res_bad ${CMAKE_BINARY_DIR}/cuda_resources_selftest/spill_sm90)
  add_custom_command(OUTPUT ${ngs_res_bad}.log
    COMMAND bash ${ngs_res_script} ${CMAKE_CUDA_COMPILER} 90 ${ngs_res_bad}
            ${CMAKE_CURRENT_LIST_DIR}/cuda_resources_spill.cu
    DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cuda_resources_spill.cu ${ngs_res_script}
    COMMENT "ptxas resource report of the spilling self-test kernel" VERBATIM)
  add_custom_target(ngs_cuda_resources ALL DEPENDS ${ngs_res_outputs} ${ngs_res_bad}.log)
  add_test(NAME CudaResources.RegistersFitAndNothingSpills
           COMMAND ${NGS_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_cuda_resources.py ${ngs_res_dir}
                   --known ${CMAKE_CURRENT_LIST_DIR}/cuda_resources_known.txt)
  add_test(NAME CudaResources.CheckerRejectsASpillingKernel
           COMMAND ${NGS_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_cuda_resources.py
                   ${CMAKE_BINARY_DIR}/cuda_resources_selftest)
  set_tests_properties(CudaResources.RegistersFitAndNothingSpills PROPERTIES LABELS cuda)
  set_tests_properties(CudaResources.CheckerRejectsASpillingKernel PROPERTIES LABELS cuda
                       PASS_REGULAR_EXPRESSION "spilling_kernel.*FAIL: spills")
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
