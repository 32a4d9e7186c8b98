// Compile-only checks of the CUDA emulation subset (tests/cpp/cuda.cmake): with
// -DNGS_EMU_CASE=0 this kernel uses only the documented subset and must compile; every
// other case uses something outside the subset and must NOT compile in the emulation build,
// with the diagnostic its "expect-error:" line names (tests/cpp/expect_compile_error.sh).
#include "common.cuh"

__global__ void subset_kernel(float *out) {
  NGS_DYNAMIC_SHARED(float, s);
  NGS_STATIC_SHARED(float, tile, 32);
  tile[threadIdx.x & 31] = s[threadIdx.x];
  __syncthreads();
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, tile[threadIdx.x & 31], 1);
#if NGS_EMU_CASE == 1
  // expect-error: ngs_emu_plain_shared_is_not_emulated_use_NGS_STATIC_SHARED|conflicting specifiers in declaration of .raw.|cannot combine with previous .extern.
  extern __shared__ float raw[];  // dynamic shared memory must use NGS_DYNAMIC_SHARED
  out[0] = raw[0];
#elif NGS_EMU_CASE == 2
  // expect-error: .__shfl. was not declared|undeclared identifier .__shfl.
  out[0] = __shfl(out[0], 0);  // legacy shuffle without a mask
#elif NGS_EMU_CASE == 3
  // expect-error: .__ldg. was not declared|undeclared identifier .__ldg.
  out[0] = __ldg(out);  // read-only cache load: not in the subset
#elif NGS_EMU_CASE == 4
  // expect-error: .cooperative_groups. has not been declared|undeclared identifier .cooperative_groups.
  cooperative_groups::this_grid().sync();  // grid sync: not in the subset
#elif NGS_EMU_CASE == 5
  // expect-error: poisoned .__expf.|poisoned identifier
  out[0] = __expf(out[0]);  // fast-math intrinsic: not in the subset
#elif NGS_EMU_CASE == 7
  // expect-error: ngs_emu_plain_shared_is_not_emulated_use_NGS_STATIC_SHARED
  __shared__ float plain[32];  // static shared memory must use NGS_STATIC_SHARED
  out[0] = plain[0];
#endif
}

void launch(float *out, cudaStream_t s) {
#if NGS_EMU_CASE == 6
  // expect-error: expected primary-expression before .<. token|expected expression
  subset_kernel<<<1, 32, 128, s>>>(out);  // launches go through NGS_LAUNCH
#else
  NGS_LAUNCH(subset_kernel, dim3(1), dim3(32), 128, s)(out);
#endif
}
