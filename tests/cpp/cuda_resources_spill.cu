// A kernel that spills (64 live floats, 1024 threads: at most 64 registers each), for the
// self test of check_cuda_resources.py (CudaResources.CheckerRejectsASpillingKernel).
__global__ void __launch_bounds__(1024) spilling_kernel(float *x, int n) {
  float a[64];
  for (int i = 0; i < 64; ++i) a[i] = x[i * n];
  x[threadIdx.x] = a[n & 63];
}
