# The real-time synth (docs/SYNTH.md): equivalence with the offline processes, block-size
# independence, timing, events, stealing, fades, resampled rates.
ngs_add_gtest(test_synth
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth.cpp
  LIBS ngs_core ngs_cuda_impl)
target_include_directories(test_synth PRIVATE ${NGS_SAMPLERATE_INCLUDE_DIR})

# The synth's polyphase sample-rate converter (kernels/cpu/resample.{h,cpp}): against a
# direct double-precision evaluation of its filter, its frequency response, sines,
# impulses, chunking and restart independence.
ngs_add_gtest(test_synth_resample
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth_resample.cpp
  LIBS ngs_core)
