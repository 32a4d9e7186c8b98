# The real-time synth (docs/SYNTH.md): equivalence with the offline processes, block-size
# independence, timing, events, stealing, fades, resampled rates.
ngs_add_gtest(test_synth
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth.cpp
  LIBS ngs_core ngs_cuda_impl)
target_include_directories(test_synth PRIVATE ${NGS_SAMPLERATE_INCLUDE_DIR})
