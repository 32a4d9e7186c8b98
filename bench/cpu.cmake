# CPU op benchmarks (kernels/cpu): GEMM GFLOP/s per ISA, FFT, decode stages.
add_executable(cpu_ops_bench ${CMAKE_CURRENT_LIST_DIR}/cpu_ops_bench.cpp)
target_link_libraries(cpu_ops_bench PRIVATE ngs_core benchmark::benchmark)
target_include_directories(cpu_ops_bench PRIVATE ${PROJECT_SOURCE_DIR}/engine/src)
