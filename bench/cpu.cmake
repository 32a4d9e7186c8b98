# CPU op benchmarks (kernels/cpu): GEMM GFLOP/s per ISA, FFT, decode stages.
add_executable(cpu_ops_bench ${CMAKE_CURRENT_LIST_DIR}/cpu_ops_bench.cpp)
target_link_libraries(cpu_ops_bench PRIVATE ngs_core benchmark::benchmark)
target_include_directories(cpu_ops_bench PRIVATE ${PROJECT_SOURCE_DIR}/engine/src)

# The encoder's convolution algorithms (direct, Winograd, bf16 fast mode) on a model file.
add_executable(bench_encoder ${CMAKE_CURRENT_LIST_DIR}/bench_encoder.cpp)
target_link_libraries(bench_encoder PRIVATE ngs_core)
target_include_directories(bench_encoder PRIVATE ${PROJECT_SOURCE_DIR}/engine/src)
