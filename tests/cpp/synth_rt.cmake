# Real-time safety of the streaming synth (docs/SYNTH.md, README "Real time"): the
# interposition test (allocation, locks, waits and system calls inside
# ngs_synth_process / ngs_synth_post), linked against the shared library as a host would;
# not in sanitizer builds, whose runtimes interpose the same functions.
if(NOT NGS_SANITIZE)
  ngs_add_gtest(test_synth_rt
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth_rt.cpp ${CMAKE_CURRENT_LIST_DIR}/rt_interpose.cpp
    LIBS ngs ${CMAKE_DL_LIBS})
endif()
