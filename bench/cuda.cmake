# CUDA kernel benchmarks (docs/CUDA.md "Performance model"): built with the real backend
# when CUDA is on; every case reports "skipped: no device" without a usable GPU.
if(NGS_CUDA_ENABLED)
  add_executable(bench_cuda_kernels ${CMAKE_CURRENT_LIST_DIR}/bench_cuda_kernels.cpp)
  target_link_libraries(bench_cuda_kernels PRIVATE ngs_cuda_impl ngs_core benchmark::benchmark)
  add_executable(bench_cuda_latent ${CMAKE_CURRENT_LIST_DIR}/bench_cuda_latent.cpp)
  target_link_libraries(bench_cuda_latent PRIVATE ngs_cuda_impl ngs_core benchmark::benchmark)
endif()
