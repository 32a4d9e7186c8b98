# Real-time safety of the streaming synth (docs/SYNTH.md, README "Real time"). The
# programs link the shared library, as a host does, and carry a ctest timeout: a process
# call that waited for a posting thread would hang instead of failing.

# The interposition test: allocation, locks, waits and system calls inside
# ngs_synth_process / ngs_synth_post (tests/cpp/rt_interpose.cpp). Not in sanitizer
# builds, whose runtimes interpose the same functions.
if(NOT NGS_SANITIZE)
  ngs_add_gtest(test_synth_rt TIMEOUT 300
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth_rt.cpp ${CMAKE_CURRENT_LIST_DIR}/rt_interpose.cpp
    LIBS ngs ${CMAKE_DL_LIBS})
endif()

# Posting threads, a statistics reader and the audio thread together; run in every build,
# and by scripts/test.sh in the ThreadSanitizer one (label threads).
ngs_add_gtest(test_synth_tsan TIMEOUT 300
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth_tsan.cpp
  LIBS ngs Threads::Threads
  LABELS threads)

# The plain-C host (apps/synth_host) run end to end: its WAV against the offline renders;
# and the report of `ngs bench --stream`.
if(TARGET ngs_synth_host)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(NGS_TEST_SNDFILE REQUIRED IMPORTED_TARGET sndfile)
  ngs_add_gtest(test_synth_host TIMEOUT 300
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth_host.cpp
    LIBS ngs PkgConfig::NGS_TEST_SNDFILE)
  target_compile_definitions(test_synth_host PRIVATE NGS_SYNTH_HOST="$<TARGET_FILE:ngs_synth_host>")
  add_dependencies(test_synth_host ngs_synth_host)
  if(TARGET ngs_cli)  # `ngs bench --stream`'s report
    target_compile_definitions(test_synth_host PRIVATE NGS_CLI="$<TARGET_FILE:ngs_cli>")
    add_dependencies(test_synth_host ngs_cli)
  endif()
endif()
